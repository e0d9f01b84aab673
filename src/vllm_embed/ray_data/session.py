"""Connecting to Ray for the CLI: an existing cluster, or a local Ray that lives as long as the command."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from vllm_embed._optional import require
from vllm_embed.ray_data.watchdog import GRACE_SECONDS

WATCHDOG_SECONDS = 2 * GRACE_SECONDS + 10
"""How long leaving the session waits for the watchdog to stop what `ray.shutdown()` left of the cluster."""


def check_ray_address(address: str) -> None:
    """Refuses an address `ray_session` cannot join.

    Raises:
        ValueError: Naming the forms it takes.
    """
    if address not in ("auto", "local") and not address.startswith("ray://"):
        raise ValueError(f"--ray {address!r}: give auto, local or ray://host:port")


@contextlib.contextmanager
def ray_session(address: str) -> Iterator[None]:
    """Connects to Ray at `address` (`"auto"`, `"local"` or `"ray://…"`) for the block; disconnects after.

    A Ray already initialised in this process is used as it is (and left running). A local Ray is this
    process's: its processes are stopped when the block ends, and also when this process dies without
    reaching that point (killed by SIGKILL, say), by a watchdog process (`vllm_embed.ray_data.watchdog`).

    Raises:
        ValueError: For another address.
    """
    check_ray_address(address)
    ray = require("ray", "vllm_embed.ray_data")
    if ray.is_initialized():
        yield
        return
    local = address == "local"
    with _watchdog() if local else contextlib.nullcontext():
        if local:
            cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
            ray.init(num_cpus=cpus, include_dashboard=False, configure_logging=False)
        else:
            ray.init(address=address, configure_logging=False)
        try:
            yield
        finally:
            ray.shutdown()


@contextlib.contextmanager
def _watchdog() -> Iterator[None]:
    """Runs the watchdog of this process's local Ray for the block; it stops what is left when the block ends.

    It gets a pipe that only this process holds open (the descriptor is not inherited), in a session of its
    own (a Ctrl-C on the terminal is for this process, not for it).
    """
    script = Path(__file__).with_name("watchdog.py")
    watchdog = subprocess.Popen(
        [sys.executable, str(script), str(os.getpid())],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield
    finally:
        if watchdog.stdin is not None:
            watchdog.stdin.close()
        try:
            watchdog.wait(timeout=WATCHDOG_SECONDS)
        except subprocess.TimeoutExpired:
            watchdog.kill()
            watchdog.wait()
