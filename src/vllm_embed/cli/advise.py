"""`vllm-embed advise`: the vector size and quantization that keep recall on your corpus, and their flags.

Everything that can be checked before the engine starts (the settings, the input paths, the queries file,
the store, matplotlib for `--plot`) is, so a mistake fails in seconds. The library (`vllm_embed.advise`)
returns the recommended settings as data; the flags are written here.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from vllm_embed.advise import STORES, Advice, AdviceRow, check_options
from vllm_embed.advise import advise as run_advise
from vllm_embed.cli.commands import _start_engine
from vllm_embed.cli.engine_options import EngineSettings, embedder_options, flag_name
from vllm_embed.cli.input_options import (
    ChunkOverlapOpt,
    ChunkTokensOpt,
    IdFieldOpt,
    SplitterOpt,
    TextFieldOpt,
)
from vllm_embed.cli.output import err, out, user_errors
from vllm_embed.config import EmbedderConfig
from vllm_embed.errors import VllmEmbedError
from vllm_embed.ingest.loaders import load_paths

if TYPE_CHECKING:
    StoreName = str
else:
    StoreName = Literal[STORES]  # the stores `advise` re-measures in, as choices typer checks

INGEST_DEFAULTS: dict[str, Any] = {
    "chunk_tokens": None,
    "chunk_overlap": 0,
    "splitter": None,
    "text_field": "text",
    "id_field": None,
}
"""Options `vllm-embed ingest` takes too, to read and chunk the same way, with their defaults."""


def _size(count: int) -> str:
    """Bytes in binary units, three significant digits: `610 MiB`, `59.6 GiB`."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.3g} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _read_queries(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise VllmEmbedError(
            f"cannot read --queries {path}: {exc}; pass a UTF-8 file, one query per line"
        ) from exc
    queries = [line.strip() for line in lines if line.strip()]
    if not queries:
        raise VllmEmbedError(f"--queries {path} holds no query: write one query per line")
    return queries


def _table(advice: Advice) -> Table:
    table = Table(
        title=f"{advice.model}: recall against native {advice.native_dimensions}-d float32 search",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    recall = f"recall@{advice.top_k}"
    for name in ("dims", "stored as", recall, "bytes", "RAM 1M", "RAM 100M", "disk 100M"):
        table.add_column(name, justify="left" if name == "stored as" else "right", no_wrap=True)
    store = any(row.store_recall_at_k is not None for row in advice.rows)
    if store:
        table.add_column(f"recall in {advice.store}", justify="right", no_wrap=True)
    for row in advice.rows:
        chosen = row is advice.recommendation
        cells = [
            str(row.dimensions),
            row.kind,
            f"{row.recall_at_k:.3f}",
            str(row.bytes_per_vector),
            _size(row.memory_1m_bytes),
            _size(row.memory_100m_bytes),
            _size(row.disk_100m_bytes) if row.disk_100m_bytes else "-",
        ]
        if store:
            cells.append("" if row.store_recall_at_k is None else f"{row.store_recall_at_k:.3f}")
        style = "bold green" if chosen else ("dim" if row.recall_at_k < advice.target_recall else None)
        table.add_row(*cells, style=style)
    return table


NOT_REPEATED = frozenset({"model", "cache", "cache_max_bytes"})
"""Embedder settings the printed ingest command does not repeat: the model is written first, and the cache
does not change the vectors."""


def setting_flags(settings: Mapping[str, Any]) -> list[str]:
    """The flags that set `settings`: `--name value`, and `--name` / `--no-name` for a boolean."""
    words: list[str] = []
    for name, value in settings.items():
        if isinstance(value, bool):
            words.append(flag_name(name) if value else "--no-" + flag_name(name)[2:])
        else:
            words += [flag_name(name), str(value)]
    return words


def ingest_flags(advice: Advice, store: Literal["qdrant", "milvus"] = "qdrant") -> list[str] | None:
    """The `vllm-embed ingest` flags that create the recommended collection in `store`.

    Returns:
        The flags (`[]` for the native float32 default, and without a recommendation), or `None` when the
        store has no such configuration (binary on Milvus).
    """
    stored = advice.qdrant_settings if store == "qdrant" else advice.milvus_settings
    if stored is None:
        return None
    return setting_flags(advice.embedder_settings) + setting_flags(stored)


def _engine_flags(settings: EngineSettings) -> list[str]:
    """The Embedder flags this command was given (not at their defaults): ingest makes the same vectors."""
    given = {
        name: value
        for name, value in settings.items()
        if name not in NOT_REPEATED and value != EmbedderConfig.model_fields[name].default
    }
    return setting_flags(given)


def ingest_command(advice: Advice, paths: list[Path], given: dict[str, Any], settings: EngineSettings) -> str:
    """The `vllm-embed ingest` command line that stores the corpus as the recommendation says.

    It repeats the Embedder and chunking flags this command was given, so ingest embeds as measured.
    """
    assert advice.recommendation is not None
    words = ["vllm-embed", "ingest", *(str(path) for path in paths), flag_name("model"), advice.model]
    words += _engine_flags(settings)
    for name, value in given.items():
        if value != INGEST_DEFAULTS[name]:
            words += [flag_name(name), str(value)]
    words += ingest_flags(advice) or []
    return " ".join(shlex.quote(word) for word in words) + " --collection NAME --qdrant-edge DIR"


def _print_recommendation(
    advice: Advice, paths: list[Path], given: dict[str, Any], settings: EngineSettings
) -> None:
    best: AdviceRow | None = advice.recommendation
    if best is None:
        top = max(advice.rows, key=lambda row: row.recall_at_k)
        out.print(
            f"no configuration reaches recall@{advice.top_k} {advice.target_recall:g} "
            f"(best: {escape(top.label)} at {top.recall_at_k:.3f}); keep the native float32 vectors, or "
            "lower --target-recall"
        )
        return
    out.print(
        f"[bold]recommended:[/] {escape(best.label)}: recall@{advice.top_k} {best.recall_at_k:.3f} "
        f">= {advice.target_recall:g}, {_size(best.memory_1m_bytes)} RAM per million vectors"
        + (f" (+{_size(best.disk_1m_bytes)} on disk)" if best.disk_1m_bytes else "")
    )
    out.print(escape(ingest_command(advice, paths, given, settings)))
    milvus = ingest_flags(advice, "milvus")
    if milvus is None:
        out.print("on Milvus: no index stores binary codes of float vectors; use int8 (--index IVF_SQ8)")
    elif milvus != ingest_flags(advice):
        out.print(f"on Milvus (--milvus): {escape(' '.join(milvus) or 'the default index')}")


@embedder_options(skip=("dimensions", "query_instruction"))
def advise(
    paths: Annotated[
        list[Path],
        typer.Argument(metavar="PATH", help="Files (.jsonl, .csv, .parquet, .txt, .md) or directories."),
    ],
    settings: EngineSettings,
    queries: Annotated[
        Path | None,
        typer.Option(
            "--queries",
            help="Your queries, one per line \\[default: one sentence of each of --held-out sampled chunks].",
            show_default=False,
        ),
    ] = None,
    sample: Annotated[int, typer.Option("--sample", min=2, help="Chunks embedded as the corpus.")] = 2000,
    held_out: Annotated[
        int, typer.Option("--held-out", min=1, help="Chunks held out to derive queries from (no --queries).")
    ] = 200,
    target_recall: Annotated[
        float,
        typer.Option("--target-recall", help="Recall@k the recommendation must reach (above 0, at most 1)."),
    ] = 0.95,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="The k of recall@k.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print the advice as one JSON object.")] = False,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            help="Draw recall against bytes per vector into this image (needs matplotlib).",
            show_default=False,
        ),
    ] = None,
    store: Annotated[
        StoreName | None,
        typer.Option(
            "--store",
            help="Measure the configurations of the recommended size again through real collections of this "
            "store (in a temporary directory, HNSW graph and quantization built).",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the sampling.")] = 0,
    chunk_tokens: ChunkTokensOpt = None,
    chunk_overlap: ChunkOverlapOpt = 0,
    splitter: SplitterOpt = None,
    text_field: TextFieldOpt = "text",
    id_field: IdFieldOpt = None,
) -> None:
    """Measure which vector size and quantization keep recall on a sample of your corpus.

    The sample is chunked as ingest chunks it and embedded once at the model's native size; every smaller
    Matryoshka size × float32 / int8 / binary (with and without rescoring) is searched exactly and compared
    with the native float32 ranking. Prints the table, the recommendation and its `vllm-embed ingest` flags.
    """
    with user_errors():
        config = EmbedderConfig(**settings)
        documents = load_paths(paths, text_field=text_field, id_field=id_field)
        query_texts = _read_queries(queries) if queries is not None else None
        check_options(sample=sample, held_out=held_out, target_recall=target_recall, top_k=top_k, store=store)
        if plot is not None:
            from vllm_embed._optional import require

            require("matplotlib", "advise --plot")
        err.print(f"embedding a sample of {escape(', '.join(map(str, paths)))} with {escape(config.model)} …")
        embedder = _start_engine(config)
        try:
            advice = run_advise(
                documents,
                embedder=embedder,
                queries=query_texts,
                sample=sample,
                held_out=held_out,
                target_recall=target_recall,
                top_k=top_k,
                store=store,
                seed=seed,
                chunk_tokens=chunk_tokens,
                chunk_overlap=chunk_overlap,
                splitter=splitter,
                text_field=text_field,
                id_field=id_field,
            )
        finally:
            embedder.close()
        if plot is not None:
            from vllm_embed.advise import plot as draw

            draw(advice, plot)
    if as_json:
        flags = {"ingest_flags": ingest_flags(advice), "milvus_flags": ingest_flags(advice, "milvus")}
        print(json.dumps(advice.to_dict() | flags, ensure_ascii=False))
    else:
        out.print(_table(advice))
        origin = "from --queries" if advice.queries_from == "given" else "a sentence of each held-out chunk"
        out.print(f"{advice.sample_chunks} chunks, {advice.queries} queries ({origin})")
        given = {
            "chunk_tokens": chunk_tokens,
            "chunk_overlap": chunk_overlap,
            "splitter": splitter,
            "text_field": text_field,
            "id_field": id_field,
        }
        _print_recommendation(advice, paths, given, settings)
    if plot is not None:
        err.print(f"plot written to {escape(str(plot))}")
