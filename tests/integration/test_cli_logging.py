"""Quiet by default: vLLM's output (its logs, C libraries' notices, torch warnings, in every engine process)
goes to a log file; the terminal gets it only at log level info or debug. The result alone is on stdout.

The engine cases start real engines in subprocesses, as a user's script and the `vllm-embed` command do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

VLLM_START_LINE = "Initializing a V1 LLM engine"


def environment(root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VLLM_LOGGING", "VLLM_EMBED_LOG"))}
    return {
        **env,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "XDG_STATE_HOME": str(root),
        **extra,
    }


def engine_log(root: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in root.rglob("engine-*.log"))


def run_python(root: Path, source: str, **extra: str) -> subprocess.CompletedProcess[str]:
    script = root / "script.py"
    script.write_text(source)
    return subprocess.run(
        [sys.executable, str(script)],
        env=environment(root, **extra),
        capture_output=True,
        text=True,
        timeout=900,
    )


REDIRECT = """
import multiprocessing, os, sys
from vllm_embed._logging import drain_echo, engine_output

def child():
    os.write(2, b"CHILD-FD-LINE\\n")

if __name__ == "__main__":
    with engine_output(CHOSEN_LEVEL) as log:
        os.write(1, b"C-LEVEL-LINE\\n")
        print("PYTHON-LINE", file=sys.stderr)
        process = multiprocessing.get_context("spawn").Process(target=child)
        process.start()
    process.join()
    drain_echo()
    print("RESULT", log.name)
"""


@pytest.mark.parametrize("level", ["warning", "info"])
def test_output_while_an_engine_starts_goes_to_the_log_file(tmp_path: Path, level: str) -> None:
    done = run_python(tmp_path, REDIRECT.replace("CHOSEN_LEVEL", repr(level)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("RESULT engine-")
    logged = engine_log(tmp_path)
    for line in ("C-LEVEL-LINE", "PYTHON-LINE", "CHILD-FD-LINE"):  # the spawned child inherited the file
        assert line in logged
        assert (line in done.stderr) == (level == "info")
    assert len(done.stdout.splitlines()) == 1


def test_an_engine_that_fails_to_start_names_its_log_file(tmp_path: Path, minilm_path: str) -> None:
    source = (
        "from vllm_embed import Embedder\n"
        "from vllm_embed.errors import EngineStartError\n"
        'if __name__ == "__main__":\n'
        "    try:\n"
        f"        Embedder({minilm_path!r}, engine_kwargs={{'max_model_len': 1_000_000}})\n"
        "    except EngineStartError as exc:\n"
        "        print(exc)\n"
    )
    done = run_python(tmp_path, source)
    assert done.returncode == 0, done.stderr[-3000:]
    (message,) = done.stdout.splitlines()
    assert message.startswith(f"the vLLM engine for {minilm_path} did not start: ")
    log = Path(message.rsplit("its output is in ", 1)[1].rstrip(")"))
    assert log.is_file() and log.is_relative_to(tmp_path)
    assert done.stderr == ""


def test_the_python_quick_start_prints_only_its_result(tmp_path: Path, minilm_path: str) -> None:
    source = (
        "from vllm_embed import Embedder\n"
        'if __name__ == "__main__":\n'
        f"    with Embedder({minilm_path!r}, dtype='float32') as embedder:\n"
        "        print(embedder.embed_documents(['hello world']).shape)\n"
    )
    done = run_python(tmp_path, source)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout == "(1, 384)\n"
    assert done.stderr == ""
    assert VLLM_START_LINE in engine_log(tmp_path)


# Each case starts an engine in a CLI process; the default is what every user sees, the other two run with
# `make test-slow` (the unit tier checks the levels' routing without an engine).
@pytest.mark.parametrize(
    "flags",
    [
        [],
        pytest.param(["--quiet"], marks=pytest.mark.slow),
        pytest.param(["--log-level", "info"], marks=pytest.mark.slow),
    ],
    ids=["default", "quiet", "info"],
)
def test_a_cli_ingest_shows_its_own_progress_and_vllm_only_at_info(
    tmp_path: Path, minilm_path: str, flags: list[str]
) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": str(i), "text": f"document {i}"}) + "\n" for i in range(5)))
    command = [sys.executable, "-m", "vllm_embed.cli", *flags, "ingest", str(corpus), "-m", minilm_path]
    command += [
        "--dtype",
        "float32",
        "-c",
        "docs",
        "--qdrant",
        str(tmp_path / "qdrant"),
        "--no-progress",
        "--json",
    ]
    done = subprocess.run(command, env=environment(tmp_path), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["written"] == 5
    assert VLLM_START_LINE in engine_log(tmp_path)
    if flags == ["--log-level", "info"]:
        assert VLLM_START_LINE in done.stderr
    elif flags == ["--quiet"]:
        assert done.stderr == ""
    else:
        assert done.stderr.splitlines() == [f"starting the vLLM engine for {minilm_path}…"]
