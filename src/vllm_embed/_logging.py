"""Where vLLM's output goes: always into a per-process log file, onto stderr only at log level info or debug.

vLLM logs on stdout by default, and its engine runs in spawned processes whose C libraries (NUMA binding,
Triton probes, checkpoint progress bars) and torch warnings write straight to file descriptors 1 and 2, where
Python's logging cannot quiet them. Spawned processes inherit this process's descriptors, so while vLLM is
imported and while an engine starts, descriptors 1 and 2 point at the log file: the engine's processes keep
writing there for their whole life. In this process, vLLM's log handler is then set to the chosen level and
a file handler copies everything to the log too. At info or debug a thread echoes the log file to stderr.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast, get_args

from vllm_embed.config import LogLevel

LEVEL_VARIABLE = "VLLM_EMBED_LOG_LEVEL"
"""Environment variable read for the log level when `log_level` is not given (the CLI's `--log-level`)."""

DEFAULT_LEVEL: LogLevel = "warning"

_KEEP_LOG_FILES = 20
_ECHO_SECONDS = 0.2

_lock = threading.RLock()
_log_path: Path | None = None
_echo: _Echo | None = None


def resolve_level(setting: LogLevel | None = None) -> LogLevel:
    """The log level in force: `setting`, else `VLLM_EMBED_LOG_LEVEL`, else `"warning"`."""
    if setting is not None:
        return setting
    value = os.environ.get(LEVEL_VARIABLE, "").strip().lower()
    return cast(LogLevel, value) if value in get_args(LogLevel) else DEFAULT_LEVEL


def log_directory() -> Path:
    """The directory of the engine log files (the platform's per-user log directory)."""
    from platformdirs import user_log_path

    return user_log_path("vllm-embed", appauthor=False)


def engine_log_path() -> Path:
    """This process's engine log file, created on first use (the oldest files beyond 20 are removed)."""
    global _log_path
    with _lock:
        if _log_path is None:
            directory = log_directory()
            directory.mkdir(parents=True, exist_ok=True)
            old = sorted(directory.glob("engine-*.log"), key=lambda p: p.stat().st_mtime)
            for stale in old[: max(0, len(old) - _KEEP_LOG_FILES + 1)]:
                with contextlib.suppress(OSError):
                    stale.unlink()
            stamp = time.strftime("%Y%m%d-%H%M%S")
            _log_path = directory / f"engine-{stamp}-{os.getpid()}.log"
            _log_path.touch()
        return _log_path


@contextlib.contextmanager
def engine_output(setting: LogLevel | None = None) -> Iterator[Path]:
    """Sends descriptors 1 and 2 to the engine log while vLLM is imported or an engine starts.

    The engine processes started meanwhile inherit them. Afterwards vLLM's logger in this process is set to
    the log level (and copied to the file), and at info or debug the log file is echoed to stderr.

    Yields:
        The log file.
    """
    level = resolve_level(setting)
    path = engine_log_path()
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    # The file gets vLLM's INFO lines even when the terminal gets only warnings (a user's own setting wins).
    if level == "debug":
        os.environ["VLLM_LOGGING_LEVEL"] = "DEBUG"
    else:
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "INFO")
    with _lock:
        _flush_std_streams()
        target = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        saved = os.dup(1), os.dup(2)
        try:
            os.dup2(target, 1)
            os.dup2(target, 2)
            yield path
        finally:
            _flush_std_streams()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for descriptor in (*saved, target):
                os.close(descriptor)
            _route_vllm_logger(level, path)
            if level in ("info", "debug"):
                _start_echo(path)


def mute_vllm_terminal() -> None:
    """Stops vLLM's log lines in this process from reaching the terminal (they still reach the log file)."""
    for handler in logging.getLogger("vllm").handlers:
        if not isinstance(handler, _FileCopy) and isinstance(handler, logging.StreamHandler):
            handler.setLevel(logging.CRITICAL + 1)


def drain_echo() -> None:
    """Echoes what the log file gained since the last echo (at info or debug), e.g. after a shutdown."""
    if _echo is not None:
        _echo.copy()


def _flush_std_streams() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.flush()


class _FileCopy(logging.FileHandler):
    """vLLM's records in this process, copied to the engine log."""


def _route_vllm_logger(level: LogLevel, path: Path) -> None:
    """VLLM's stream handlers in this process at `level` (off at info/debug: the echo shows the file)."""
    vllm_logger = logging.getLogger("vllm")
    threshold = logging.CRITICAL + 1 if level in ("info", "debug") else getattr(logging, level.upper())
    formatter = None
    for handler in vllm_logger.handlers:
        if isinstance(handler, _FileCopy):
            return
        if isinstance(handler, logging.StreamHandler):
            handler.setLevel(threshold)
            formatter = formatter or handler.formatter
    copy = _FileCopy(path, encoding="utf-8")
    copy.setLevel(logging.DEBUG if level == "debug" else logging.INFO)
    if formatter is not None:
        copy.setFormatter(formatter)
    vllm_logger.addHandler(copy)


class _Echo:
    """Copies what the log file gains to stderr, from a daemon thread and on demand."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = 0
        self._copying = threading.Lock()
        threading.Thread(target=self._run, name="vllm-embed-log-echo", daemon=True).start()

    def _run(self) -> None:
        while True:
            self.copy()
            time.sleep(_ECHO_SECONDS)

    def copy(self) -> None:
        with self._copying, contextlib.suppress(OSError, ValueError):
            with self._path.open("rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
            if data:
                self._offset += len(data)
                sys.stderr.write(data.decode("utf-8", "replace"))
                sys.stderr.flush()


def _start_echo(path: Path) -> None:
    global _echo
    with _lock:
        if _echo is None:
            _echo = _Echo(path)
