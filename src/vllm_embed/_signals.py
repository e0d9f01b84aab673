"""Ctrl-C and SIGTERM: one path (`KeyboardInterrupt`), and a flag the engine reads to stop in seconds.

A job scheduler or `docker stop` sends SIGTERM, which Python would end the process on without running any
clean-up, leaving vLLM's engine processes orphaned. Both signals become a `KeyboardInterrupt` in the main
thread; once interrupted, engines shut down with a short grace period and further signals are ignored, so the
clean-up itself is not interrupted.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

_interrupted = threading.Event()


def interrupted() -> bool:
    """Whether this process received SIGINT or SIGTERM through `install_interrupt_handlers`."""
    return _interrupted.is_set()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if _interrupted.is_set():
        return  # already cleaning up: a second Ctrl-C must not break that
    _interrupted.set()
    raise KeyboardInterrupt


def install_interrupt_handlers() -> None:
    """Makes SIGINT and SIGTERM raise `KeyboardInterrupt` once (main thread only; a no-op elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _on_signal)
