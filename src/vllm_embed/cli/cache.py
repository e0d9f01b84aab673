"""`vllm-embed cache info|clear`, and the checks that turn a bad cache file into a one-line error.

A cache file may be damaged (truncated, overwritten), another application's SQLite database, a directory or
unwritable. Each is named with its path and its fix; `cache clear` deletes a damaged file, never a database
that is not a vllm-embed cache.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from vllm_embed._utils import one_line
from vllm_embed.cache import EmbeddingCache, default_cache_path
from vllm_embed.cli.output import out, user_errors
from vllm_embed.errors import CacheError

cache_app = typer.Typer(help="Inspect or clear the persistent embedding cache.", no_args_is_help=True)

PathOpt = Annotated[
    Path | None,
    typer.Option(
        "--path", help="Cache file \\[default: the per-user cache used by --cache user].", show_default=False
    ),
]

_SIDE_FILES = ("-wal", "-shm", "-journal")


class DamagedCacheError(CacheError):
    """The cache file is not a readable SQLite database (truncated or overwritten)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(
            f"the embedding cache {path} is damaged ({reason}): delete it with "
            f"`vllm-embed cache clear --path {path}` (the next run starts a new cache)"
        )
        self.path = path


def cache_file(value: bool | str | Path | None) -> Path:
    """The cache file a `--path`/`--cache` value names (`None`, `True` or 'user': the per-user cache)."""
    if value is None or value is True or value == "user":
        return default_cache_path()
    return Path(str(value)).expanduser()


@contextmanager
def cache_file_errors(path: Path, *, os_errors: bool = True) -> Iterator[None]:
    """Names `path` and its fix in SQLite (and, with `os_errors`, file system) errors raised inside."""
    try:
        yield
    except CacheError:
        raise
    except sqlite3.OperationalError as exc:
        raise CacheError(_unusable(path, exc)) from exc
    except sqlite3.DatabaseError as exc:
        raise DamagedCacheError(path, one_line(exc)) from exc
    except (sqlite3.Error, OSError) as exc:
        if isinstance(exc, OSError) and not os_errors:
            raise
        raise CacheError(_unusable(path, exc)) from exc


def _unusable(path: Path, exc: BaseException) -> str:
    return (
        f"cannot use the embedding cache {path}: {one_line(exc)}; check that it is a writable file (and its "
        "directory too), or pass another cache file"
    )


def check_cache_file(path: Path, *, thorough: bool = False) -> None:
    """Refuses a cache file that cannot be one, reading it without changing it; a missing file passes.

    Args:
        path: The cache file.
        thorough: Also check every page (`PRAGMA quick_check`), which reads the whole file.

    Raises:
        DamagedCacheError: If it is not a readable SQLite database.
        CacheError: If it is a directory, another application's database, or cannot be opened.
    """
    if not path.exists():
        return
    if path.is_dir():
        raise CacheError(f"the embedding cache {path} is a directory: pass a file path for the cache")
    read_only = f"{path.resolve().as_uri()}?mode=ro"
    with cache_file_errors(path), closing(sqlite3.connect(read_only, uri=True)) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if thorough and tables:
            problems = [row[0] for row in db.execute("PRAGMA quick_check")]
            if problems != ["ok"]:
                raise DamagedCacheError(path, "; ".join(problems[:3]))
    if tables and "embeddings" not in tables:
        raise CacheError(
            f"{path} is an SQLite database of another application (tables {sorted(tables)}), not a "
            "vllm-embed cache: pass another cache file (vllm-embed leaves this one alone)"
        )


def open_cache(path: Path, max_bytes: int | None = None) -> EmbeddingCache:
    """Opens (creating if missing) a checked cache file; errors name the file and the fix."""
    check_cache_file(path)
    with cache_file_errors(path):
        return EmbeddingCache(path) if max_bytes is None else EmbeddingCache(path, max_bytes=max_bytes)


@cache_app.command("info")
def info(
    path: PathOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Show where the cache is, how many vectors it holds and how large it is."""
    target = cache_file(path)
    with user_errors():
        exists = target.exists()
        details: dict[str, Any] = {"path": str(target), "entries": 0, "bytes": 0}
        if exists:
            cache = open_cache(target)
            with closing(cache), cache_file_errors(target):
                details = cache.info()
    if as_json:
        print(json.dumps(details))
        return
    out.print(f"cache: {details['path']}" + ("" if exists else " (does not exist yet)"))
    out.print(f"entries: {details['entries']:,}")
    out.print(f"size: {details['bytes'] / 2**20:.1f} MiB")


@cache_app.command("clear")
def clear(path: PathOpt = None) -> None:
    """Delete every cached vector; a damaged cache file is deleted."""
    target = cache_file(path)
    with user_errors():
        if not target.exists():
            out.print(f"removed 0 cached vectors from {target}")
            return
        try:
            check_cache_file(target, thorough=True)
            cache = open_cache(target)
            with closing(cache), cache_file_errors(target):
                removed = cache.clear()
        except DamagedCacheError:
            with cache_file_errors(target):
                for file in [target, *(target.with_name(target.name + s) for s in _SIDE_FILES)]:
                    file.unlink(missing_ok=True)
            out.print(f"deleted the damaged cache file {target}")
            return
    out.print(f"removed {removed:,} cached vectors from {target}")
