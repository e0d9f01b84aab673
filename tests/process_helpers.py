"""Helpers of the tests that kill or interrupt a CLI process: what it maps and what it has written."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import psutil


def shared_memory_of(pid: int) -> set[Path]:
    """The /dev/shm segments that a process and its descendants have mapped."""
    segments: set[Path] = set()
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return segments
    for member in tree:
        with contextlib.suppress(psutil.Error):
            segments.update(Path(m.path) for m in member.memory_maps() if m.path.startswith("/dev/shm/"))
    return segments


def written_points(root: Path) -> int:
    """Points a killed process committed to the Qdrant local store under `root`, read without its lock."""
    storage = root / "qdrant" / "collection" / "docs" / "storage.sqlite"
    if not storage.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{storage}?mode=ro", uri=True) as db:
            return int(db.execute("select count(*) from points").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
