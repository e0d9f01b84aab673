"""`vllm-embed cache info|clear`: inspect and empty the persistent embedding cache."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from vllm_embed.cache import EmbeddingCache, clear_cache, default_cache_path

cache_app = typer.Typer(help="Inspect or clear the persistent embedding cache.", no_args_is_help=True)
_out = Console(highlight=False, soft_wrap=True)

PathOpt = Annotated[
    Path | None,
    typer.Option("--path", help="Cache file [default: the per-user cache used by cache=True]."),
]


def _open(path: Path | None, *, create: bool) -> EmbeddingCache | None:
    target = path or default_cache_path()
    if not target.exists() and not create:
        return None
    return EmbeddingCache(target)


@cache_app.command("info")
def info(
    path: PathOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Show where the cache is, how many vectors it holds and how large it is."""
    cache = _open(path, create=False)
    target = path or default_cache_path()
    details: dict[str, Any] = (
        cache.info() if cache is not None else {"path": str(target), "entries": 0, "bytes": 0}
    )
    if as_json:
        print(json.dumps(details))
        return
    _out.print(f"cache: {details['path']}" + ("" if cache is not None else " (does not exist yet)"))
    _out.print(f"entries: {details['entries']:,}")
    _out.print(f"size: {details['bytes'] / 2**20:.1f} MiB")


@cache_app.command("clear")
def clear(path: PathOpt = None) -> None:
    """Delete every cached vector."""
    removed = clear_cache(path or default_cache_path())
    _out.print(f"removed {removed:,} cached vectors from {path or default_cache_path()}")
