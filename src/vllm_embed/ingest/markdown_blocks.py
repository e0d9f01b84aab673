"""Cutting a Markdown document into pieces the Markdown splitter handles in bounded time.

semantic-text-splitter's `MarkdownSplitter` takes time quadratic in the length of what it is given when a
large fenced code block is followed by a heading (a 531 KB file took minutes). So a document is cut here,
along its own structure, before that splitter sees it: a fenced block larger than `LARGE_FENCE` characters
goes to the plain-text splitter on its own (its lines are still kept whole), and the rest is grouped,
section by section (a section starts at an ATX heading), into pieces of at most `MARKDOWN_PIECE`
characters; a single section larger than that goes to the plain-text splitter too. No chunk spans the
boundary of a large fenced block, which is where a reader would expect one to end anyway.
"""

from __future__ import annotations

import re
from typing import Literal

LARGE_FENCE = 16_384
"""Characters above which a fenced code block is split by the plain-text splitter, on its own."""

MARKDOWN_PIECE = 65_536
"""Most characters given to the Markdown splitter at once (whole sections are grouped up to it)."""

PieceKind = Literal["markdown", "text"]

_FENCE_OPEN = re.compile(r"^ {0,3}(`{3,}(?=[^`]*$)|~{3,})")
_HEADING = re.compile(r"^ {0,3}#{1,6}(?:[ \t]|$)")


def _blocks(text: str) -> list[tuple[bool, str]]:
    """Cuts `text` into `(is_fence, block)` in order; the blocks put together are `text`.

    A block is a fenced code block, or a section: it starts at an ATX heading, at the start of the text,
    or after a fence.
    """
    blocks: list[tuple[bool, str]] = []
    current: list[str] = []
    fence: str | None = None  # the opening fence while inside a fenced block

    def close(is_fence: bool) -> None:
        if current:
            blocks.append((is_fence, "".join(current)))
            current.clear()

    for line in text.splitlines(keepends=True):
        if fence is not None:
            current.append(line)
            stripped = line.strip()
            if stripped and set(stripped) == {fence[0]} and len(stripped) >= len(fence):
                close(True)
                fence = None
            continue
        opening = _FENCE_OPEN.match(line)
        if opening is not None:
            close(False)
            fence = opening.group(1)
            current.append(line)
            continue
        if _HEADING.match(line):
            close(False)
        current.append(line)
    close(fence is not None)  # an unclosed fence runs to the end of the document
    return blocks


def markdown_pieces(text: str) -> list[tuple[PieceKind, str]]:
    """Returns `text` as pieces in order, each with the splitter that splits it.

    Whole sections and small fenced blocks are grouped into `"markdown"` pieces of at most
    `MARKDOWN_PIECE` characters; a fenced block above `LARGE_FENCE`, or a section above `MARKDOWN_PIECE`,
    is a `"text"` piece of its own. The pieces put together are `text`.
    """
    if len(text) <= LARGE_FENCE:
        return [("markdown", text)]
    pieces: list[tuple[PieceKind, str]] = []
    group: list[str] = []
    size = 0
    for is_fence, block in _blocks(text):
        if len(block) > (LARGE_FENCE if is_fence else MARKDOWN_PIECE):
            if group:
                pieces.append(("markdown", "".join(group)))
                group, size = [], 0
            pieces.append(("text", block))
            continue
        if group and size + len(block) > MARKDOWN_PIECE:
            pieces.append(("markdown", "".join(group)))
            group, size = [], 0
        group.append(block)
        size += len(block)
    if group:
        pieces.append(("markdown", "".join(group)))
    return pieces
