"""Connecting to Ray for the CLI: an existing cluster, or a local Ray that lives as long as the command."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from vllm_embed._optional import require


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

    A Ray already initialised in this process is used as it is (and left running).

    Raises:
        ValueError: For another address.
    """
    check_ray_address(address)
    ray = require("ray", "vllm_embed.ray_data")
    if ray.is_initialized():
        yield
        return
    if address == "local":
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        ray.init(num_cpus=cpus, include_dashboard=False, configure_logging=False)
    else:
        ray.init(address=address, configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()
