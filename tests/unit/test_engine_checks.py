"""What the in-process engine checks before vLLM starts: each mistake is one line naming the fix.

Run in subprocesses: the spawn-guard check reads the running script (`__main__`), the torch-companion check
imports packages.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CHECK = "from vllm_embed.backends.engine_checks import check_spawn_guard\n"


def run_script(path: Path, source: str, *command: str) -> subprocess.CompletedProcess[str]:
    """Writes `source` to `path` and runs it (or `python *command` with `path`'s folder on the path)."""
    path.write_text(source)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(path.parent.parent), str(path.parent), *sys.path]),
    }
    return subprocess.run(
        [sys.executable, *(command or [str(path)])], env=env, capture_output=True, text=True, timeout=120
    )


def last_line(done: subprocess.CompletedProcess[str]) -> str:
    return done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""


def test_a_script_without_the_main_guard_is_told_to_add_it(tmp_path: Path) -> None:
    done = run_script(tmp_path / "script.py", CHECK + "def build():\n    check_spawn_guard()\n\nbuild()\n")
    assert done.returncode == 1
    assert last_line(done) == (
        f"vllm_embed.errors.EngineStartError: {tmp_path / 'script.py'}:5 starts the vLLM engine at the "
        "script's top level, which vLLM runs again in each engine process: move it under  "
        'if __name__ == "__main__":'
    )


@pytest.mark.parametrize(
    "source",
    [
        CHECK + 'if __name__ == "__main__":\n    print("guarded")\n    check_spawn_guard()\n',
        CHECK + "if '__main__' == __name__:\n    check_spawn_guard()\n",
        CHECK + "def main():\n    check_spawn_guard()\n\nif __name__ == '__main__':\n    main()\n",
    ],
)
def test_a_guarded_script_passes(tmp_path: Path, source: str) -> None:
    done = run_script(tmp_path / "script.py", source)
    assert done.returncode == 0, done.stderr


def test_a_package_main_and_code_without_a_file_pass(tmp_path: Path) -> None:
    package = tmp_path / "fakepkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    done = run_script(package / "__main__.py", CHECK + "check_spawn_guard()\n", "-m", "fakepkg")
    assert done.returncode == 0, done.stderr
    inline = subprocess.run(
        [sys.executable, "-c", CHECK + "check_spawn_guard()"], capture_output=True, text=True
    )
    assert inline.returncode == 0, inline.stderr


def test_a_torchvision_built_for_another_torch_is_one_line_naming_the_uninstall(tmp_path: Path) -> None:
    fake = tmp_path / "torchvision"
    fake.mkdir()
    (fake / "__init__.py").write_text('raise RuntimeError("operator torchvision::nms does not exist")\n')
    source = (
        "from vllm_embed.backends.engine_checks import check_torch_companions\n"
        "check_torch_companions(['torchvision'])\n"
    )
    done = run_script(tmp_path / "script.py", source)
    assert done.returncode == 1
    assert last_line(done) == (
        "vllm_embed.errors.EngineStartError: the installed torchvision does not match torch (operator "
        "torchvision::nms does not exist) and breaks vLLM; text embedding does not need it: run  "
        "pip uninstall -y torchvision torchaudio torchcodec"
    )
    fake.joinpath("__init__.py").write_text("")
    assert run_script(tmp_path / "script.py", source).returncode == 0
