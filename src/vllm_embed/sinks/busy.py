"""Which process holds an embedded store's lock file (`/proc/locks` on Linux), for `StoreBusyError`."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

import psutil

_PROC_LOCKS = Path("/proc/locks")


def lock_holders(lock_file: Path) -> list[int]:
    """Returns the PIDs holding a lock on `lock_file` (empty when none, or when the system does not tell)."""
    try:
        status = lock_file.stat()
        table = _PROC_LOCKS.read_text()
    except OSError:
        return []
    # /proc/locks: "1: FLOCK  ADVISORY  WRITE 7311 fe:00:2148521 0 EOF"; a waiter's line has "->".
    wanted = f"{os.major(status.st_dev):02x}:{os.minor(status.st_dev):02x}:{status.st_ino}"
    holders = []
    for line in table.splitlines():
        fields = line.split()
        if len(fields) >= 6 and "->" not in fields and fields[5] == wanted and fields[4].isdigit():
            holders.append(int(fields[4]))
    return sorted(set(holders))


def describe_process(pid: int) -> str:
    """Returns `PID 123: python notebook.py` (the command line cut to 80 characters, when readable)."""
    if pid == os.getpid():
        return f"PID {pid}: this process"
    with contextlib.suppress(psutil.Error):
        command = " ".join(psutil.Process(pid).cmdline())
        if command:
            return f"PID {pid}: {command[:77] + '...' if len(command) > 80 else command}"
    return f"PID {pid}"


def holders_text(lock_files: Iterable[Path]) -> str:
    """Returns who holds any of `lock_files`: `"PID 1: cmd; PID 2: cmd"`, or `"another process"`."""
    pids = sorted({pid for lock_file in lock_files for pid in lock_holders(lock_file)})
    return "; ".join(describe_process(pid) for pid in pids) or "another process"


def held_elsewhere(lock_files: Iterable[Path]) -> bool:
    """Whether a process other than this one holds one of `lock_files`."""
    own = os.getpid()
    return any(pid != own for lock_file in lock_files for pid in lock_holders(lock_file))
