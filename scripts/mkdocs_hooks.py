"""MkDocs hook: the CLI reference page, generated from the typer app with typer's own docs generator.

`docs/reference/cli.md` holds the marker below; each build replaces it with the Markdown that
`typer vllm_embed.cli utils docs` would write, so the page always matches `vllm-embed --help`.
"""

from __future__ import annotations

from typing import Any

MARKER = "<!-- cli-reference -->"


def cli_reference() -> str:
    """The whole command tree of `vllm-embed` as Markdown, its title levels shifted under the page's."""
    import typer
    from typer.cli import get_docs_for_click
    from typer.core import MARKUP_MODE_KEY

    from vllm_embed.cli import app

    command = typer.main.get_command(app)
    ctx = typer.Context(command, obj={MARKUP_MODE_KEY: app.rich_markup_mode})
    with ctx:
        text = get_docs_for_click(obj=command, ctx=ctx, name="vllm-embed", indent=1)
    return text.strip() + "\n"


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    """Replaces the marker with the generated reference."""
    if MARKER in markdown:
        return markdown.replace(MARKER, cli_reference())
    return markdown
