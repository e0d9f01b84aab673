"""Stops a local Ray cluster's processes when the process that started it ends, SIGKILL included.

`ray.init()` ties its GCS server and raylet to the driver (`PR_SET_PDEATHSIG`), but not what the raylet
starts: the dashboard and runtime-env agents and the workers see the raylet die, then wait about a minute
on the dead GCS before exiting, under PID 1 meanwhile; a replica's vLLM worker process may outlive its
replica altogether. A SIGKILL cannot be caught, so another process watches: `ray_session("local")` starts
this file as a script (it imports nothing of vllm_embed) with a pipe on its stdin before `ray.init()`.

While the pipe is open it notes the cluster's processes: the driver's children with a file open in the
driver's Ray session directory (`session_<time>_<driver pid>`, as Ray names it) and all their
descendants. When the pipe closes (the driver left the session, exited or was killed), it stops those, and
the processes of the session that were orphaned in between (SIGTERM, then SIGKILL after `GRACE_SECONDS`).
The driver's other children (an application's own) are never touched.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import sys
import time

import psutil

GRACE_SECONDS = 20.0
"""How long a process has to exit after SIGTERM before it is killed (a vLLM engine shuts down meanwhile)."""

POLL_SECONDS = 0.5
"""How often the cluster's processes are noted while the driver runs."""


class Session:
    """The Ray processes of one driver's local cluster, as seen so far."""

    def __init__(self, driver_pid: int) -> None:
        self.driver_pid = driver_pid
        self.pattern = re.compile(rf"/session_[0-9_-]+_{driver_pid}(/|$)")
        self.seen: set[psutil.Process] = set()

    def holds_a_session_file(self, process: psutil.Process) -> bool:
        """Whether `process` has a file open in the session directory."""
        with contextlib.suppress(psutil.Error):
            return any(self.pattern.search(file.path) for file in process.open_files())
        return False

    def note(self) -> None:
        """Adds the driver's session children and their descendants to `seen`."""
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.driver_pid).children():
                if child in self.seen or self.holds_a_session_file(child):
                    self.seen.add(child)
                    with contextlib.suppress(psutil.Error):
                        self.seen.update(child.children(recursive=True))

    def orphans(self) -> set[psutil.Process]:
        """Processes of the session whose parent is gone (PID 1 now) or was one of the cluster's."""
        parents = {1, self.driver_pid, *(process.pid for process in self.seen)}
        found = set()
        for process in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                if process.ppid() in parents and self.holds_a_session_file(process):
                    found.add(process)
        return found


def stop(processes: set[psutil.Process]) -> None:
    """Sends SIGTERM to `processes`, then SIGKILL to those still running after `GRACE_SECONDS`."""
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    for process in _running(processes, GRACE_SECONDS):
        with contextlib.suppress(psutil.Error):
            process.kill()
    _running(processes, GRACE_SECONDS)


def _running(processes: set[psutil.Process], timeout: float) -> list[psutil.Process]:
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
    """Notes the cluster's processes until stdin ends (the driver closed it, or died), then stops them."""
    session = Session(driver_pid)
    while True:
        session.note()
        readable, _, _ = select.select([sys.stdin], [], [], POLL_SECONDS)
        if readable and not os.read(sys.stdin.fileno(), 1024):
            break
    spared = {os.getpid(), driver_pid}  # on a normal exit the driver is still running: it is not ours to stop
    stop({process for process in session.seen | session.orphans() if process.pid not in spared})


if __name__ == "__main__":
    main(int(sys.argv[1]))
