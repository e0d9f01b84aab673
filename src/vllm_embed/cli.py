"""The `vllm-embed` command line: `ingest` files into Qdrant or Milvus, and `search` them.

Subcommands are registered on `app`; a new group (e.g. `cache`) is added with `app.add_typer(...)`. The
Embedder flags live in one place (`_EmbedderFlags` and `_embedder_config`), shared by every command that
builds an Embedder.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from typer.exceptions import TyperException

from vllm_embed.backends.openai_remote import RemoteEmbeddingError
from vllm_embed.cli_cache import cache_app
from vllm_embed.config import EmbedderConfig
from vllm_embed.ingest.loaders import load_paths
from vllm_embed.ingest.pipeline import ingest as run_ingest
from vllm_embed.ingest.search import require_manifest
from vllm_embed.ingest.search import search as run_search
from vllm_embed.sinks.base import Hit, ManifestMismatchError, MetadataValue, Sink, SinkError

if TYPE_CHECKING:
    from vllm_embed.embedder import Embedder

app = typer.Typer(
    name="vllm-embed",
    help="Embed corpora with vLLM into Qdrant or Milvus, and search them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.add_typer(cache_app, name="cache")

_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)

# Mistakes a user can fix; anything else is a bug and keeps its traceback.
_USER_ERRORS = (
    FileNotFoundError,
    ValueError,
    LookupError,
    ImportError,
    SinkError,
    RemoteEmbeddingError,
    typer.BadParameter,
)


def make_embedder(config: EmbedderConfig) -> Embedder:
    """Builds the Embedder for a command (starts the engine). Tests replace this to reuse an engine."""
    from vllm_embed.embedder import Embedder

    return Embedder(config=config)


def _fail(message: str, code: int = 1) -> NoReturn:
    _err.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
    return " ".join(str(exc).split()) or type(exc).__name__


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turns user mistakes into a one-line error and a non-zero exit, instead of a traceback."""
    try:
        yield
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        _fail("interrupted; run the same command again to resume", code=130)
    except _USER_ERRORS as exc:
        _fail(_one_line(exc))


# -- shared options --------------------------------------------------------------------------------

QdrantOpt = Annotated[
    str | None,
    typer.Option(
        "--qdrant",
        help="Qdrant: a local directory, ':memory:', or a server URL (http://…).",
        show_default=False,
    ),
]
MilvusOpt = Annotated[
    str | None,
    typer.Option(
        "--milvus", help="Milvus: a Milvus Lite file (./milvus.db) or a server URI.", show_default=False
    ),
]


class LayoutName(StrEnum):
    """Payload layouts (`vllm_embed.sinks.layouts`)."""

    VLLM_EMBED = "vllm-embed"
    LANGCHAIN = "langchain"
    LLAMA_INDEX = "llama-index"


CollectionOpt = Annotated[str, typer.Option("--collection", "-c", help="Collection name.")]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option("--api-key", envvar="VLLM_EMBED_STORE_API_KEY", help="Qdrant API key or Milvus token."),
]
DimensionsOpt = Annotated[
    int | None, typer.Option("--dimensions", "-d", min=1, help="Output size (Matryoshka models only).")
]
DtypeOpt = Annotated[str, typer.Option("--dtype", help="Engine dtype: auto, float32, bfloat16, float16.")]
MaxModelLenOpt = Annotated[
    int | None, typer.Option("--max-model-len", min=1, help="Longest input in tokens.")
]
TensorParallelOpt = Annotated[
    int, typer.Option("--tensor-parallel-size", min=1, help="Tensor parallel size.")
]
PipelineParallelOpt = Annotated[int, typer.Option("--pipeline-parallel-size", min=1, help="Pipeline stages.")]
GpuMemoryOpt = Annotated[
    float | None,
    typer.Option("--gpu-memory-utilization", help="Fraction of device memory the engine may use."),
]
TrustRemoteCodeOpt = Annotated[
    bool, typer.Option("--trust-remote-code", help="Allow model repositories' code.")
]
RevisionOpt = Annotated[
    str | None, typer.Option("--revision", help="Model revision (branch, tag or commit).")
]
LongInputOpt = Annotated[
    str, typer.Option("--long-input", help="Inputs longer than the model: chunk, truncate or error.")
]
BackendOpt = Annotated[
    str,
    typer.Option("--backend", help="Engine: vllm (in this process) or openai (an OpenAI-compatible server)."),
]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        help="Server API root for --backend openai, e.g. http://127.0.0.1:8000/v1 (key from "
        "VLLM_EMBED_API_KEY or OPENAI_API_KEY).",
    ),
]
CacheOpt = Annotated[
    str | None,
    typer.Option("--cache", help="Embedding cache: a SQLite file, or 'user' for the per-user cache."),
]
QueryInstructionOpt = Annotated[
    str | None,
    typer.Option("--query-instruction", help="Task instruction for queries (instruction-tuned models)."),
]


def _embedder_config(model: str, dimensions: int | None, **flags: Any) -> EmbedderConfig:
    """Validates the Embedder settings (before any engine starts); `None` flags keep their defaults."""
    return EmbedderConfig(
        model=model, dimensions=dimensions, **{k: v for k, v in flags.items() if v is not None}
    )


def _cache_setting(value: str | None) -> bool | str | None:
    return True if value == "user" else value


def _open_sink(
    qdrant: str | None, milvus: str | None, collection: str, api_key: str | None, layout: str | None = None
) -> Sink:
    if (qdrant is None) == (milvus is None):
        raise typer.BadParameter("give exactly one of --qdrant or --milvus")
    if qdrant is not None:
        from vllm_embed.sinks.qdrant import QdrantSink

        if qdrant.startswith(("http://", "https://")):
            return QdrantSink(collection, url=qdrant, api_key=api_key, layout=layout)
        if qdrant == ":memory:":
            return QdrantSink(collection, location=qdrant, layout=layout)
        return QdrantSink(collection, path=qdrant, layout=layout)
    from vllm_embed.sinks.milvus import MilvusSink

    return MilvusSink(collection, uri=milvus, token=api_key, layout=layout)


def _parse_filters(items: list[str]) -> dict[str, MetadataValue]:
    """Parses `key=value` items; a value that reads as JSON (3, true, "3") keeps that type."""
    parsed: dict[str, MetadataValue] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--filter takes key=value, got {item!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        parsed[key] = value if isinstance(value, str | int | float | bool) else raw
    return parsed


@contextmanager
def _closing(*resources: Any) -> Iterator[None]:
    try:
        yield
    finally:
        for resource in resources:
            if resource is not None:
                resource.close()


# -- commands --------------------------------------------------------------------------------------


@app.command()
def ingest(
    paths: Annotated[
        list[Path], typer.Argument(help="Files (.jsonl, .csv, .parquet, .txt, .md) or directories.")
    ],
    model: Annotated[str, typer.Option("--model", "-m", help="Model id or local directory.")],
    collection: CollectionOpt,
    qdrant: QdrantOpt = None,
    milvus: MilvusOpt = None,
    api_key: ApiKeyOpt = None,
    dimensions: DimensionsOpt = None,
    chunk_tokens: Annotated[
        int | None,
        typer.Option("--chunk-tokens", min=1, help="Longest chunk in tokens [default: the model's]."),
    ] = None,
    chunk_overlap: Annotated[
        int, typer.Option("--chunk-overlap", min=0, help="Tokens shared by chunks.")
    ] = 0,
    text_field: Annotated[str, typer.Option("--text-field", help="Text field/column of records.")] = "text",
    id_field: Annotated[
        str | None, typer.Option("--id-field", help="Id field/column [default: 'id' when present].")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Chunks per embedding call.")] = 256,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
    layout: Annotated[
        LayoutName | None,
        typer.Option(
            "--layout",
            help="Payload layout: vllm-embed, or langchain / llama-index to make the collection readable by "
            "that framework's own vector store [default: the collection's, else vllm-embed].",
            show_default=False,
        ),
    ] = None,
    dtype: DtypeOpt = "auto",
    max_model_len: MaxModelLenOpt = None,
    tensor_parallel_size: TensorParallelOpt = 1,
    pipeline_parallel_size: PipelineParallelOpt = 1,
    gpu_memory_utilization: GpuMemoryOpt = None,
    trust_remote_code: TrustRemoteCodeOpt = False,
    revision: RevisionOpt = None,
    long_input: LongInputOpt = "chunk",
    backend: BackendOpt = "vllm",
    base_url: BaseUrlOpt = None,
    cache: CacheOpt = None,
) -> None:
    """Chunk, embed and store documents; re-running skips what is already stored."""
    with _user_errors():
        if chunk_tokens is not None and chunk_overlap >= chunk_tokens:
            raise typer.BadParameter(
                f"--chunk-overlap {chunk_overlap} must be below --chunk-tokens {chunk_tokens}"
            )
        config = _embedder_config(
            model,
            dimensions,
            dtype=dtype,
            max_model_len=max_model_len,
            tensor_parallel_size=tensor_parallel_size,
            pipeline_parallel_size=pipeline_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            trust_remote_code=trust_remote_code,
            revision=revision,
            long_input=long_input,
            backend=backend,
            base_url=base_url,
            cache=_cache_setting(cache),
        )
        documents = load_paths(paths, text_field=text_field, id_field=id_field)
        layout_name = None if layout is None else layout.value
        sink = _open_sink(qdrant, milvus, collection, api_key, layout_name)
        embedder: Embedder | None = None
        with _closing(sink):
            _check_before_engine(sink, model, dimensions, layout_name)
            embedder = make_embedder(config)
            with _closing(embedder):
                report = run_ingest(
                    documents,
                    embedder=embedder,
                    sink=sink,
                    chunk_tokens=chunk_tokens,
                    chunk_overlap=chunk_overlap,
                    batch_size=batch_size,
                    progress=progress,
                    text_field=text_field,
                    id_field=id_field,
                )
        _out.print(str(report))


def _check_before_engine(sink: Sink, model: str, dimensions: int | None, layout: str | None) -> None:
    """Refuses an obvious manifest mismatch before spending a minute starting the engine."""
    stored = sink.read_manifest()
    if stored is None:
        return
    if layout is not None and stored.layout != layout:
        raise ManifestMismatchError(
            f"collection {sink.collection!r} has the {stored.layout!r} layout, not {layout!r}: "
            "leave --layout out to keep the collection's, or use another collection"
        )
    if stored.model != model:
        raise ManifestMismatchError(
            f"collection {sink.collection!r} was embedded with model {stored.model!r}, not {model!r}: "
            "use that model, or another collection"
        )
    if dimensions is not None and stored.dimensions != dimensions:
        raise ManifestMismatchError(
            f"collection {sink.collection!r} holds {stored.dimensions}-d vectors, not {dimensions}-d: "
            "use the same --dimensions, or another collection"
        )


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="The search text.")],
    collection: CollectionOpt,
    qdrant: QdrantOpt = None,
    milvus: MilvusOpt = None,
    api_key: ApiKeyOpt = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="Number of hits.")] = 5,
    filters: Annotated[
        list[str] | None,
        typer.Option("--filter", help="Metadata key=value the hits must match (repeatable)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the hits as a JSON array.")] = False,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="Model [default: the one in the collection's manifest; another one is refused].",
        ),
    ] = None,
    dtype: DtypeOpt = "auto",
    max_model_len: MaxModelLenOpt = None,
    tensor_parallel_size: TensorParallelOpt = 1,
    pipeline_parallel_size: PipelineParallelOpt = 1,
    gpu_memory_utilization: GpuMemoryOpt = None,
    trust_remote_code: TrustRemoteCodeOpt = False,
    revision: RevisionOpt = None,
    query_instruction: QueryInstructionOpt = None,
    backend: BackendOpt = "vllm",
    base_url: BaseUrlOpt = None,
    cache: CacheOpt = None,
) -> None:
    """Search a collection with the model recorded in its manifest."""
    with _user_errors():
        metadata_filter = _parse_filters(filters or [])
        sink = _open_sink(qdrant, milvus, collection, api_key)
        with _closing(sink):
            manifest = require_manifest(sink)
            if model is not None:
                _check_before_engine(sink, model, None, None)
            config = _embedder_config(
                model or manifest.model,
                manifest.dimensions,
                dtype=dtype,
                max_model_len=max_model_len,
                tensor_parallel_size=tensor_parallel_size,
                pipeline_parallel_size=pipeline_parallel_size,
                gpu_memory_utilization=gpu_memory_utilization,
                trust_remote_code=trust_remote_code,
                revision=revision,
                query_instruction=query_instruction,
                backend=backend,
                base_url=base_url,
                cache=_cache_setting(cache),
            )
            embedder = make_embedder(config)
            with _closing(embedder):
                hits = run_search(query, embedder=embedder, sink=sink, top_k=top_k, filter=metadata_filter)
        if as_json:
            print(json.dumps([h.to_dict() for h in hits], ensure_ascii=False, indent=2))
        else:
            print_hits(hits, _out)


def print_hits(hits: list[Hit], console: Console, width: int = 300) -> None:
    """Prints hits readably: rank, score, document and chunk, a text excerpt, and the metadata."""
    if not hits:
        console.print("no hits")
    for rank, hit in enumerate(hits, start=1):
        text = " ".join(hit.text.split())
        excerpt = text if len(text) <= width else text[: width - 1] + "…"
        console.print(
            f"[bold]{rank}.[/] [cyan]{hit.score:.3f}[/]  [bold]{escape(hit.doc_id)}[/] #{hit.chunk_index}"
        )
        console.print(f"   {escape(excerpt)}")
        if hit.metadata:
            console.print(f"   [dim]{escape(json.dumps(hit.metadata, ensure_ascii=False))}[/]")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `vllm-embed` script; usage errors are printed on one line."""
    # vLLM logs on stdout by default, which would mix its start-up lines into `search --json` output; the
    # engine's processes inherit this, and a user's own setting wins.
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    try:
        code = app(
            args=argv if argv is not None else sys.argv[1:], prog_name="vllm-embed", standalone_mode=False
        )
    except typer.Abort:
        sys.exit(130)
    except TyperException as exc:  # typer's own click: usage errors, bad parameter values
        format_message = getattr(exc, "format_message", None)
        if format_message is None:
            raise
        _err.print(f"[bold red]error:[/] {escape(' '.join(format_message().split()))} (see --help)")
        sys.exit(getattr(exc, "exit_code", 2))
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main()
