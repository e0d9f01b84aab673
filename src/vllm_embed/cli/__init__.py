"""The `vllm-embed` command line: `ingest` files into Qdrant or Milvus, `search` them, manage the `cache`.

Results go to stdout, everything else (logs, progress, errors) to stderr. A mistake the user can fix is one
`error: …` line and a non-zero exit status, never a traceback. The Embedder flags of every command are
derived from `EmbedderConfig` (`vllm_embed.cli.engine_options`).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.markup import escape
from typer.exceptions import TyperException

from vllm_embed._logging import LEVEL_VARIABLE
from vllm_embed._signals import install_interrupt_handlers, interrupted
from vllm_embed._utils import one_line
from vllm_embed._version import __version__
from vllm_embed.cli.advise import advise
from vllm_embed.cli.cache import cache_app
from vllm_embed.cli.collections import collections_app
from vllm_embed.cli.commands import ingest, search
from vllm_embed.cli.engine_options import help_text
from vllm_embed.cli.output import err, print_hits
from vllm_embed.cli.serve import serve
from vllm_embed.cli.verify import verify
from vllm_embed.config import EmbedderConfig, LogLevel, RerankerConfig
from vllm_embed.errors import VllmEmbedError
from vllm_embed.model_source import check_model_source

if TYPE_CHECKING:
    from vllm_embed.embedder import Embedder
    from vllm_embed.reranker import Reranker

__all__ = ["app", "main", "make_embedder", "make_reranker", "print_hits"]

app = typer.Typer(
    name="vllm-embed",
    help="Embed corpora with vLLM into Qdrant or Milvus, and search them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(ingest)
app.command()(search)
app.command()(verify)
app.command()(advise)
app.command()(serve)
app.add_typer(cache_app, name="cache")
app.add_typer(collections_app, name="collections")


@dataclass(frozen=True)
class GlobalOptions:
    """The options given before the command, as `ctx.obj` of every command."""

    quiet: bool = False


_options = GlobalOptions()
"""The global options of the running command, for code that has no `ctx` (`make_embedder`)."""


def make_embedder(config: EmbedderConfig) -> Embedder:
    """Builds the Embedder for a command, its engine started on first use. Tests replace this.

    An ingest with everything stored already never starts the engine; tests reuse a running one.
    """
    from vllm_embed.embedder import Embedder

    if config.backend == "vllm":
        check_model_source(config.model, config.revision)
    return Embedder._unstarted(config, on_start=lambda: _say_engine_starts(config.model, config.backend))


def make_reranker(config: RerankerConfig) -> Reranker:
    """Builds the Reranker of `search --rerank` (starts its engine). Tests replace this to reuse one."""
    from vllm_embed.reranker import Reranker

    if config.backend == "vllm":
        check_model_source(config.model, config.revision)  # its error is then the only line
    _say_engine_starts(config.model, config.backend)
    return Reranker(config=config)


def _say_engine_starts(model: str, backend: str) -> None:
    """One progress line while vLLM starts (a minute or more on CPU; its own output goes to the log file)."""
    if backend != "vllm":
        return
    if not _options.quiet:
        err.print(f"[dim]starting the vLLM engine for {escape(model)}…[/]", highlight=False)


class _StderrHandler(logging.Handler):
    """Writes to the current `sys.stderr` (which tests and notebooks replace), like `logging.lastResort`."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # noqa: BLE001 - logging's own policy: report, never raise
            self.handleError(record)


def configure_logging(level: LogLevel) -> None:
    """Sets the log level of vllm-embed and of vLLM, including vLLM's engine processes.

    The engine reads it from `VLLM_EMBED_LOG_LEVEL` when it starts (the Python API's `log_level`), so this
    must run before the engine starts.
    """
    name = level.upper()
    os.environ[LEVEL_VARIABLE] = level
    ours = logging.getLogger("vllm_embed")
    ours.setLevel(name)
    if not any(isinstance(handler, _StderrHandler) for handler in ours.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        ours.addHandler(handler)


def _show_version(value: bool) -> None:
    if value:
        print(f"vllm-embed {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_show_version, help="Print the version and exit."),
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option("--quiet", "-q", help="Only warnings and errors on stderr: no progress line or bar."),
    ] = False,
    log_level: Annotated[
        LogLevel | None,
        typer.Option(
            "--log-level",
            help=help_text(EmbedderConfig.model_fields["log_level"].description),
            show_default=False,
        ),
    ] = None,
) -> None:
    """Embed corpora with vLLM into Qdrant or Milvus, and search them."""
    if log_level is not None or quiet:
        configure_logging(log_level or "warning")
    global _options
    ctx.obj = _options = GlobalOptions(quiet=quiet)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `vllm-embed` script; usage errors are printed on one line.

    As the script (no `argv`), SIGTERM is handled like Ctrl-C, and after either the process ends as soon as
    its clean-up is done.
    """
    if argv is None:
        install_interrupt_handlers()
    try:
        _run(argv)
    except SystemExit as exc:
        if interrupted():
            _exit_now(exc.code)
        raise


def _exit_now(code: object) -> NoReturn:
    """Ends an interrupted process once its clean-up ran, skipping the interpreter's finalization.

    That finalization would wait, often ten seconds or more, on the sockets of an engine start the interrupt
    abandoned.
    """
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code if isinstance(code, int) else 1)


def _run(argv: list[str] | None) -> None:
    try:
        code = app(
            args=argv if argv is not None else sys.argv[1:], prog_name="vllm-embed", standalone_mode=False
        )
    except typer.Abort:
        sys.exit(130)
    except VllmEmbedError as exc:  # the commands print these themselves; this is the safety net
        err.print(f"[bold red]error:[/] {escape(one_line(exc))}")
        sys.exit(1)
    except TyperException as exc:  # typer's own click: usage errors, bad parameter values
        format_message = getattr(exc, "format_message", None)
        if format_message is None:
            raise
        err.print(f"[bold red]error:[/] {escape(' '.join(format_message().split()))} (see --help)")
        sys.exit(getattr(exc, "exit_code", 2))
    if isinstance(code, int) and code:
        sys.exit(code)
