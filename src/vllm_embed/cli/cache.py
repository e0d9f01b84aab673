"""`vllm-embed cache info|clear`.

A bad cache file (damaged, another application's database, a directory, unwritable) is refused by
`EmbeddingCache` itself with a `CacheError` naming the file and its fix; the commands print that on one line.
`cache clear` deletes a damaged file only when its header proves it a vllm-embed cache, never anything else.
"""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path
from typing import Annotated, Any

import typer

from vllm_embed.cache import EmbeddingCache, clear_cache, default_cache_path
from vllm_embed.cli.output import out, user_errors

cache_app = typer.Typer(help="Inspect or clear the persistent embedding cache.", no_args_is_help=True)

PathOpt = Annotated[
    Path | None,
    typer.Option(
        "--path", help="Cache file \\[default: the per-user cache used by --cache user].", show_default=False
    ),
]


def cache_file(value: bool | str | Path | None) -> Path:
    """The cache file a `--path`/`--cache` value names (`None`, `True` or 'user': the per-user cache)."""
    if value is None or value is True or value == "user":
        return default_cache_path()
    return Path(str(value)).expanduser()


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
            with closing(EmbeddingCache(target)) as cache:
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
        damaged = target.exists()
        removed = clear_cache(target)
        damaged = damaged and not target.exists()
    if damaged:
        out.print(f"deleted the damaged cache file {target}")
        return
    out.print(f"removed {removed:,} cached vectors from {target}")
