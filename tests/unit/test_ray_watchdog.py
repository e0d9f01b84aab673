"""The local Ray's watchdog (`vllm_embed.ray_data.watchdog`) without Ray: which processes it stops.

A stand-in driver runs `ray_session`'s watchdog and starts two children: one with a file open in a directory
named as Ray names the driver's session (with a child of its own that holds no such file, as a replica's
vLLM worker), and one of the application's own. The real cluster is in tests/integration/test_ray_session.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from conftest import stop_process_tree

DRIVER = """
import os, signal, subprocess, sys, time
from pathlib import Path
from vllm_embed.ray_data.session import _watchdog

root, how = Path(sys.argv[1]), sys.argv[2]
log = root / f"session_2026-01-01_00-00-00_000001_{os.getpid()}" / "logs" / "raylet.out"
log.parent.mkdir(parents=True)
sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
holder = f"import subprocess, sys, time; f = open({str(log)!r}, 'a'); p = subprocess.Popen({sleeper!r}); "
holder += "print(p.pid, flush=True); time.sleep(600)"
with _watchdog():
    own = subprocess.Popen(sleeper, stdout=subprocess.DEVNULL)
    session = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    worker = int(session.stdout.readline())
    print(own.pid, session.pid, worker, flush=True)
    time.sleep(2)  # the watchdog notes the session's processes
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
print("left the session", flush=True)
"""


def alive(pid: int) -> bool:
    with contextlib.suppress(psutil.Error):
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    return False


@pytest.mark.parametrize("how", ["exit", "kill"])
def test_the_watchdog_stops_the_sessions_processes_and_spares_the_applications(
    how: str, tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    driver = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(DRIVER), str(tmp_path), how],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert driver.stdout is not None
    own, session, worker = map(int, driver.stdout.readline().split())
    try:
        rest = driver.stdout.read()
        assert driver.wait() == (-signal.SIGKILL if how == "kill" else 0)
        assert ("left the session" in rest) == (how == "exit")
        deadline = time.monotonic() + 30
        while (alive(session) or alive(worker)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive(session) and not alive(worker)
        assert alive(own)  # the application's own child is not the cluster's
    finally:
        for pid in (own, session, worker):
            stop_process_tree(pid)
