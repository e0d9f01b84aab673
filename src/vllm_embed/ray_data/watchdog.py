"""Stops a local Ray cluster's processes when the process that started it dies, SIGKILL included.

`ray.init()` ties its GCS server and raylet to the driver (`PR_SET_PDEATHSIG`), but not what the raylet
starts: the dashboard and runtime-env agents and the workers see the raylet die, then wait about a minute
on the dead GCS before exiting, under PID 1 meanwhile. A SIGKILL cannot be caught, so another process
watches: `ray_session("local")` starts this file as a script (it imports nothing of vllm_embed) with a pipe
on its stdin before `ray.init()`. When the pipe closes (the driver exited, or was killed), it stops every
process that has a file open in the driver's Ray session directory, `session_<time>_<driver pid>` (Ray
names it so); the agents keep their logs there, the other processes their stdout.
"""

from __future__ import annotations

import contextlib
import re
import sys
import time

import psutil

GRACE_SECONDS = 3.0
"""How long a session process has to exit after SIGTERM before it is killed."""


def session_processes(driver_pid: int) -> list[psutil.Process]:
    """The processes (but the driver and this one) with a file open in the Ray session of `driver_pid`."""
    session = re.compile(rf"/session_[0-9_-]+_{driver_pid}(/|$)")
    found = []
    for process in psutil.process_iter():
        if process.pid in (driver_pid, psutil.Process().pid):
            continue
        with contextlib.suppress(psutil.Error):
            if any(session.search(file.path) for file in process.open_files()):
                found.append(process)
    return found


def stop(processes: list[psutil.Process]) -> None:
    """Sends SIGTERM to `processes`, then SIGKILL to those still running after `GRACE_SECONDS`."""
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    for process in _running(processes, GRACE_SECONDS):
        with contextlib.suppress(psutil.Error):
            process.kill()
    _running(processes, GRACE_SECONDS)


def _running(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Waits up to `timeout` for `processes` to exit; returns those still running.

    An exited process whose parent does not reap it stays a zombie: it counts as exited (it holds no
    resources; PID 1, its parent once the driver is gone, reaps it, or not, as it does).
    """
    deadline = time.monotonic() + timeout
    while True:
        running = []
        for process in processes:
            with contextlib.suppress(psutil.Error):
                if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                    running.append(process)
        if not running or time.monotonic() >= deadline:
            return running
        time.sleep(0.1)


def main(driver_pid: int) -> None:
    """Waits for the end of stdin (the driver closed its end, or died), then stops the session processes."""
    while sys.stdin.buffer.read(1):
        pass
    stop(session_processes(driver_pid))


if __name__ == "__main__":
    main(int(sys.argv[1]))
