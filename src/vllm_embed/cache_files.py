"""What a file given as the cache path is, read without SQLite: a regular file, and one marked as ours.

SQLite opens whatever it is given (and creates files beside it), and a damaged file may fail before SQLite
can read its pragmas, so these checks read the file header themselves.
"""

from __future__ import annotations

import stat
from pathlib import Path

APPLICATION_ID = 0x76654D62  # "veMb": marks a SQLite file as a vllm-embed cache
_SQLITE_MAGIC = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file


def _header(path: Path) -> bytes:
    """The first 100 bytes of a regular file (SQLite's file header), or `b""` when unreadable."""
    try:
        with path.open("rb") as handle:
            return handle.read(100)
    except OSError:
        return b""


def marked_as_cache(path: Path) -> bool:
    """Whether `path` is a regular file whose SQLite header carries our application id.

    The header (offset 68, big-endian) survives damage to the pages after it, so this proves a damaged
    file is ours before `clear_cache` deletes it.
    """
    if not path.is_file():
        return False
    header = _header(path)
    return header[:16] == _SQLITE_MAGIC and int.from_bytes(header[68:72], "big") == APPLICATION_ID


def not_a_regular_file(path: Path) -> str | None:
    """What `path` is when it exists but is neither a regular file nor a directory, else `None`."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    kinds = {
        stat.S_ISFIFO: "a FIFO",
        stat.S_ISCHR: "a character device",
        stat.S_ISBLK: "a block device",
        stat.S_ISSOCK: "a socket",
    }
    return next((kind for test, kind in kinds.items() if test(mode)), None)


def is_sqlite(path: Path) -> bool:
    """Whether `path` starts with the SQLite file header (damaged or not)."""
    return path.is_file() and _header(path)[:16] == _SQLITE_MAGIC
