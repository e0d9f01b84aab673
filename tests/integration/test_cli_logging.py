"""Quiet by default: vLLM's output (its logs, C libraries' notices, torch warnings, in every engine process)
goes to a log file; the terminal gets it only at log level info or debug. The result alone is on stdout.

The engine cases start real engines in subprocesses, as a user's script and the `vllm-embed` command do.
The module launches them together (`launched`): an engine start is mostly one core's work, so on two cores
they load in about the time of one; each test then checks its own process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
from conftest import stop_process_tree

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


class Started:
    """A subprocess run in `root` (its state, script and output files live there); `result()` waits for it."""

    def __init__(self, root: Path, command: list[str], **extra: str) -> None:
        self.root = root
        with (root / "stdout").open("wb") as out, (root / "stderr").open("wb") as err:
            self.process = subprocess.Popen(command, env=environment(root, **extra), stdout=out, stderr=err)

    def result(self) -> subprocess.CompletedProcess[str]:
        self.process.wait(timeout=900)
        output = [(self.root / name).read_text(errors="replace") for name in ("stdout", "stderr")]
        return subprocess.CompletedProcess(self.process.args, self.process.returncode, *output)


def start_python(root: Path, source: str, **extra: str) -> Started:
    script = root / "script.py"
    script.write_text(source)
    return Started(root, [sys.executable, str(script)], **extra)


def run_python(root: Path, source: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return start_python(root, source, **extra).result()


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


def failing_start(root: Path, minilm_path: str) -> Started:
    source = (
        "from vllm_embed import Embedder\n"
        "from vllm_embed.errors import EngineStartError\n"
        'if __name__ == "__main__":\n'
        "    try:\n"
        f"        Embedder({minilm_path!r}, engine_kwargs={{'max_model_len': 1_000_000}})\n"
        "    except EngineStartError as exc:\n"
        "        print(exc)\n"
    )
    return start_python(root, source)


def quick_start(root: Path, minilm_path: str) -> Started:
    source = (
        "from vllm_embed import Embedder\n"
        'if __name__ == "__main__":\n'
        f"    with Embedder({minilm_path!r}, dtype='float32') as embedder:\n"
        "        print(embedder.embed_documents(['hello world']).shape)\n"
    )
    return start_python(root, source)


def cli_ingest(root: Path, minilm_path: str, flags: list[str]) -> Started:
    corpus = root / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": str(i), "text": f"document {i}"}) + "\n" for i in range(5)))
    command = [sys.executable, "-m", "vllm_embed.cli", *flags, "ingest", str(corpus), "-m", minilm_path]
    command += [
        "--dtype",
        "float32",
        "-c",
        "docs",
        "--qdrant",
        str(root / "qdrant"),
        "--no-progress",
        "--json",
    ]
    return Started(root, command)


LAUNCHED: dict[str, Callable[[Path, str], Started]] = {
    "test_an_engine_that_fails_to_start_names_its_log_file": failing_start,
    "test_the_python_quick_start_prints_only_its_result": quick_start,
    "test_a_cli_ingest_shows_its_own_progress_and_vllm_only_at_info[default]": partial(cli_ingest, flags=[]),
}


@pytest.fixture(scope="module")
def launched(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, minilm_path: str
) -> Iterator[dict[str, Started]]:
    """The module's engine starts that this session runs, launched at once, each in a root of its own."""
    selected = {item.name for item in request.session.items} & LAUNCHED.keys()
    runs = {
        name: LAUNCHED[name](tmp_path_factory.mktemp("launched"), minilm_path) for name in sorted(selected)
    }
    yield runs
    for run in runs.values():
        stop_process_tree(run.process.pid)  # a no-op once it ended


def test_an_engine_that_fails_to_start_names_its_log_file(
    launched: dict[str, Started], minilm_path: str
) -> None:
    run = launched["test_an_engine_that_fails_to_start_names_its_log_file"]
    done = run.result()
    assert done.returncode == 0, done.stderr[-3000:]
    (message,) = done.stdout.splitlines()
    assert message.startswith(f"the vLLM engine for {minilm_path} did not start: ")
    log = Path(message.rsplit("its output is in ", 1)[1].rstrip(")"))
    assert log.is_file() and log.is_relative_to(run.root)
    assert done.stderr == ""


def test_the_python_quick_start_prints_only_its_result(launched: dict[str, Started]) -> None:
    run = launched["test_the_python_quick_start_prints_only_its_result"]
    done = run.result()
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout == "(1, 384)\n"
    assert done.stderr == ""
    assert VLLM_START_LINE in engine_log(run.root)


# Each case starts an engine in a CLI process; the default is what every user sees (launched with the module's
# other engine starts), the other two run with `make test-slow` (the unit tier checks the levels' routing
# without an engine).
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
    request: pytest.FixtureRequest, tmp_path: Path, minilm_path: str, flags: list[str]
) -> None:
    launched: dict[str, Started] = request.getfixturevalue("launched")
    run = launched.get(request.node.name) or cli_ingest(tmp_path, minilm_path, flags)
    done = run.result()
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["written"] == 5
    assert VLLM_START_LINE in engine_log(run.root)
    if flags == ["--log-level", "info"]:
        assert VLLM_START_LINE in done.stderr
    elif flags == ["--quiet"]:
        assert done.stderr == ""
    else:
        assert done.stderr.splitlines() == [f"starting the vLLM engine for {minilm_path}…"]
