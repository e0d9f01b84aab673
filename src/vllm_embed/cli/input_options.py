"""Flags that say how input files are read and chunked: shared by `ingest` and `advise`, declared once."""

from __future__ import annotations

from typing import Annotated

import typer

from vllm_embed.ingest.splitters import SplitterName

ChunkTokensOpt = Annotated[
    int | None,
    typer.Option(
        "--chunk-tokens",
        min=1,
        help="Longest chunk in tokens, prompt and special tokens included "
        "\\[default: 512, or the model's limit if lower].",
    ),
]
ChunkOverlapOpt = Annotated[int, typer.Option("--chunk-overlap", min=0, help="Tokens shared by chunks.")]
SplitterOpt = Annotated[
    SplitterName | None,
    typer.Option(
        "--splitter",
        help="text: chunks end at paragraphs, sentences, words; markdown: at headings and blocks; "
        "tokens: fixed token windows \\[default: markdown for .md files, else text].",
        show_default=False,
    ),
]
TextFieldOpt = Annotated[str, typer.Option("--text-field", help="Text field/column of records.")]
IdFieldOpt = Annotated[
    str | None, typer.Option("--id-field", help="Id field/column \\[default: 'id' when present].")
]
