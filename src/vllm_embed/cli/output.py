"""Where the CLI writes: results on stdout, messages and errors on stderr, one line per error."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from vllm_embed._utils import one_line
from vllm_embed.backends.openai import RemoteEmbeddingError
from vllm_embed.errors import VllmEmbedError
from vllm_embed.sinks.base import Hit, SinkError

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

# Mistakes a user can fix; anything else is a bug and keeps its traceback.
USER_ERRORS = (
    VllmEmbedError,
    FileNotFoundError,
    ValueError,
    LookupError,
    ImportError,
    SinkError,
    RemoteEmbeddingError,
    typer.BadParameter,
)


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    r"""Returns `text` with its control characters (C0, DEL, C1) shown as `\xNN`.

    Stored ids and texts are data: they must not reach a terminal as escape sequences (clearing the
    screen, setting the window title).
    """
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def fail(message: str, code: int = 1) -> NoReturn:
    """Prints `error: message` on stderr and exits with `code`."""
    err.print(f"[bold red]error:[/] {escape(printable(message))}")
    raise typer.Exit(code)


def warn(message: str) -> None:
    """Prints `warning: message` on stderr."""
    err.print(f"[bold yellow]warning:[/] {escape(printable(message))}")


@contextmanager
def user_errors() -> Iterator[None]:
    """Turns user mistakes into a one-line error and a non-zero exit, instead of a traceback."""
    try:
        yield
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        fail("interrupted; run the same command again to resume", code=130)
    except USER_ERRORS as exc:
        fail(one_line(exc))


def print_hits(hits: list[Hit], console: Console, width: int = 300) -> None:
    """Prints hits readably: rank, score, document and chunk, a text excerpt, and the metadata.

    Control characters in stored values are escaped (`printable`).
    """
    if not hits:
        console.print("no hits")
    for rank, hit in enumerate(hits, start=1):
        text = printable(" ".join(hit.text.split()))
        excerpt = text if len(text) <= width else text[: width - 1] + "…"
        # the score that ordered the hits first: the reranker's, else MaxSim's, else the first stage's
        stages = (("rerank", hit.rerank_score), ("maxsim", hit.maxsim_score))
        staged = [(name, value) for name, value in stages if value is not None]
        score = f"{(staged[0][1] if staged else hit.score):.3f}"
        if staged:
            earlier = [f"{name} {value:.3f}" for name, value in staged[1:]] + [f"first {hit.score:.3f}"]
            score += f" ({', '.join(earlier)})"
        doc_id = escape(printable(hit.doc_id))
        console.print(f"[bold]{rank}.[/] [cyan]{score}[/]  [bold]{doc_id}[/] #{hit.chunk_index}")
        console.print(f"   {escape(excerpt)}")
        if hit.metadata:
            console.print(f"   [dim]{escape(printable(json.dumps(hit.metadata, ensure_ascii=False)))}[/]")
