"""`vllm-embed ingest` and `vllm-embed search`.

Their Embedder flags come from `EmbedderConfig` (`engine_options.embedder_options`); what is checked before
the engine starts (store flags, the collection's manifest, the cache file) fails in seconds, not minutes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.markup import escape

from vllm_embed.cache import EmbeddingCache
from vllm_embed.cli import token_models
from vllm_embed.cli.cache import cache_file
from vllm_embed.cli.engine_options import EngineSettings, embedder_options
from vllm_embed.cli.input_options import (
    ChunkOverlapOpt,
    ChunkTokensOpt,
    IdFieldOpt,
    SplitterOpt,
    TextFieldOpt,
)
from vllm_embed.cli.output import err, fail, out, print_hits, printable, user_errors
from vllm_embed.cli.storage_options import StorageFlags, fusion_options, sink_arguments, storage_options
from vllm_embed.config import EmbedderConfig, RerankerConfig
from vllm_embed.ingest.core import check_collection, scan_input
from vllm_embed.ingest.documents import DEFAULT_MAX_METADATA_BYTES
from vllm_embed.ingest.loaders import DEFAULT_ENCODING, DEFAULT_MAX_DOCUMENT_BYTES, load_paths
from vllm_embed.ingest.options import FileOptions, IngestOptions
from vllm_embed.ingest.pipeline import run_ingest
from vllm_embed.ingest.search import SearchMode, require_manifest, resolve_mode
from vllm_embed.ingest.search import search as run_search
from vllm_embed.model_source import check_model_path
from vllm_embed.sinks.base import MetadataValue, Sink
from vllm_embed.sinks.fusion import fusion_settings
from vllm_embed.sinks.layouts import LAYOUTS
from vllm_embed.sinks.storage import MilvusIndexSettings, QdrantCollectionSettings, QdrantSearchSettings

if TYPE_CHECKING:
    from vllm_embed.embedder import Embedder
    from vllm_embed.reranker import Reranker

    LayoutName = str
else:
    LayoutName = Literal[tuple(LAYOUTS)]  # the registered layouts, as choices typer checks

QdrantOpt = Annotated[
    str | None,
    typer.Option(
        "--qdrant",
        help="Qdrant: a local directory, ':memory:', or a server URL (http://…).",
        show_default=False,
    ),
]
QdrantEdgeOpt = Annotated[
    str | None,
    typer.Option(
        "--qdrant-edge",
        help="Qdrant's own engine in this process (qdrant-edge): a local directory.",
        show_default=False,
    ),
]
MilvusOpt = Annotated[
    str | None,
    typer.Option(
        "--milvus", help="Milvus: a Milvus Lite file (./milvus.db) or a server URI.", show_default=False
    ),
]
CollectionOpt = Annotated[str, typer.Option("--collection", "-c", help="Collection name.")]
RAY_ADDRESS_HELP = (
    "Run on Ray: 'auto' joins the cluster this machine belongs to, 'local' starts a Ray on this machine's "
    "CPUs (stopped afterwards), 'ray://host:10001' connects to a remote cluster. Needs the ray extra: "
    'pip install "vllm-embed\\[ray]".'
)
ApiKeyOpt = Annotated[
    str | None,
    typer.Option("--api-key", envvar="VLLM_EMBED_STORE_API_KEY", help="Qdrant API key or Milvus token."),
]


def _start_engine(config: EmbedderConfig) -> Embedder:
    from vllm_embed import cli  # looked up on each call: tests replace `cli.make_embedder`

    return cli.make_embedder(config)


RERANKER_SHARED_SETTINGS = token_models.SHARED_SETTINGS
"""The search command's engine flags that its `--rerank` model runs with too."""

SparseModelOpt = Annotated[
    str | None,
    typer.Option(
        "--sparse-model",
        help="A learned sparse model (SPLADE, BGE-M3) whose vectors are the collection's sparse half, "
        "for --mode sparse/hybrid searches, instead of --hybrid's BM25 (a new collection only).",
        show_default=False,
    ),
]
MultiVectorModelOpt = Annotated[
    str | None,
    typer.Option(
        "--multivector-model",
        help="A multi-vector model (ColBERT, BGE-M3) whose per-token vectors are stored for a MaxSim "
        "stage of searches (Qdrant; a new collection only).",
        show_default=False,
    ),
]


def _start_reranker(model: str, embedder_config: EmbedderConfig) -> Reranker:
    from vllm_embed import cli  # looked up on each call: tests replace `cli.make_reranker`

    shared = {name: getattr(embedder_config, name) for name in RERANKER_SHARED_SETTINGS}
    return cli.make_reranker(RerankerConfig(model=model, **shared))


def _open_sink(
    qdrant: str | None,
    milvus: str | None,
    collection: str,
    api_key: str | None,
    layout: str | None = None,
    hybrid: bool | None = None,
    *,
    qdrant_edge: str | None = None,
    storage: StorageFlags | None = None,
) -> Sink:
    """Opens the sink of the one store flag given, with the storage flags that were given.

    Raises:
        typer.BadParameter: Unless exactly one of --qdrant, --qdrant-edge, --milvus is given.
        StorageFlagError: For a storage flag of the other store.
    """
    stores = {"qdrant": qdrant, "qdrant-edge": qdrant_edge, "milvus": milvus}
    given = [name for name, value in stores.items() if value is not None]
    if len(given) != 1:
        raise typer.BadParameter("give exactly one of --qdrant, --qdrant-edge or --milvus")
    kwargs: dict[str, Any] = {"layout": layout, "hybrid": hybrid, **sink_arguments(given[0], storage)}
    if qdrant is not None:
        from vllm_embed.sinks.qdrant import QdrantSink

        if qdrant.startswith(("http://", "https://")):
            return QdrantSink(collection, url=qdrant, api_key=api_key, **kwargs)
        if qdrant == ":memory:":
            return QdrantSink(collection, location=qdrant, **kwargs)
        return QdrantSink(collection, path=qdrant, **kwargs)
    if qdrant_edge is not None:
        from vllm_embed.sinks.qdrant import QdrantEdgeSink

        edge: Sink = QdrantEdgeSink(collection, path=qdrant_edge, **kwargs)
        return edge
    from vllm_embed.sinks.milvus import MilvusSink

    return MilvusSink(collection, uri=milvus, token=api_key, **kwargs)


def _parse_filters(items: list[str]) -> dict[str, MetadataValue]:
    """Parses `key=value` items; a value that reads as JSON (3, true, "3") keeps that type."""
    parsed: dict[str, MetadataValue] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--filter takes key=value, got {item!r}")
        try:
            value = json.loads(raw)
        except (json.JSONDecodeError, RecursionError):  # not JSON, or nested too deeply to be a value
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


def _check_before_engine(
    sink: Sink,
    config: EmbedderConfig,
    layout: str | None,
    options: IngestOptions | None = None,
    vector_kinds: dict[str, Any] | None = None,
) -> None:
    """Refuses a collection embedded otherwise, and a bad cache file, before the engine's minute of start-up.

    Only what is known before the model is loaded is compared: the model, the size if given, the layout,
    the storage settings and, for an ingest (`options`), the chunking given.
    """
    if config.backend == "vllm":  # a mistyped path is a wrong path, not a model "mismatch"
        check_model_path(config.model)
    known: dict[str, Any] = {"model": config.model}
    if config.dimensions is not None:
        known["dimensions"] = config.dimensions
    if layout is not None:
        known["layout"] = layout
    if options is not None:
        known.update(options.chunking)
    known.update(vector_kinds or {})
    check_collection(sink, known, rechunk=options is not None and options.rechunk)
    if config.cache:
        EmbeddingCache(cache_file(config.cache), config.cache_max_bytes).close()


def _json_report(report: Any, rejected: tuple[tuple[str, str], ...]) -> str:
    details = {**report.to_dict(), "rejected": [{"doc_id": d, "reason": r} for d, r in rejected]}
    return json.dumps(details, ensure_ascii=False)


@embedder_options(skip=("query_instruction",))
@storage_options(QdrantCollectionSettings, MilvusIndexSettings, shared=True)
def ingest(
    ctx: typer.Context,
    paths: Annotated[
        list[Path],
        typer.Argument(metavar="PATH", help="Files (.jsonl, .csv, .parquet, .txt, .md) or directories."),
    ],
    collection: CollectionOpt,
    settings: EngineSettings,
    storage: StorageFlags,
    qdrant: QdrantOpt = None,
    qdrant_edge: QdrantEdgeOpt = None,
    milvus: MilvusOpt = None,
    api_key: ApiKeyOpt = None,
    chunk_tokens: ChunkTokensOpt = None,
    chunk_overlap: ChunkOverlapOpt = 0,
    text_field: TextFieldOpt = "text",
    id_field: IdFieldOpt = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Chunks per embedding call.")] = 256,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
    layout: Annotated[
        LayoutName | None,
        typer.Option(
            "--layout",
            help="Payload layout: vllm-embed, or langchain / llama-index to make the collection readable by "
            "that framework's own vector store \\[default: the collection's, else vllm-embed].",
            show_default=False,
        ),
    ] = None,
    max_document_bytes: Annotated[
        int,
        typer.Option(
            "--max-document-bytes", min=1, help="Refuse a document larger than this many bytes (UTF-8)."
        ),
    ] = DEFAULT_MAX_DOCUMENT_BYTES,
    max_metadata_bytes: Annotated[
        int,
        typer.Option(
            "--max-metadata-bytes",
            min=1,
            help="Refuse a document whose metadata (as JSON, copied into every chunk) is larger than this.",
        ),
    ] = DEFAULT_MAX_METADATA_BYTES,
    encoding: Annotated[
        str, typer.Option("--encoding", help="Encoding of the input files.")
    ] = DEFAULT_ENCODING,
    encoding_errors: Annotated[
        str | None,
        typer.Option(
            "--encoding-errors",
            help="What to do with bytes the encoding cannot decode: strict (an error naming the file and "
            "line), replace or ignore \\[default: strict; replace for text files].",
            show_default=False,
        ),
    ] = None,
    hybrid: Annotated[
        bool | None,
        typer.Option(
            "--hybrid/--no-hybrid",
            help="Store BM25 sparse vectors beside the dense ones, for --mode sparse/hybrid searches "
            "(a new collection only) \\[default: the collection's, else dense only].",
            show_default=False,
        ),
    ] = None,
    on_duplicate: Annotated[
        Literal["error", "last"],
        typer.Option(
            "--on-duplicate",
            help="The same document id twice in one run: error (nothing is written), or keep the last one.",
        ),
    ] = "error",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as one JSON object (nothing else on stdout).")
    ] = False,
    ray_address: Annotated[
        str | None, typer.Option("--ray", help=RAY_ADDRESS_HELP, show_default=False)
    ] = None,
    replicas: Annotated[int, typer.Option("--replicas", min=1, help="Engine replicas (with --ray).")] = 1,
    splitter: SplitterOpt = None,
    rechunk: Annotated[
        bool,
        typer.Option(
            "--rechunk",
            help="Replace the chunks of these documents when the collection was chunked otherwise.",
        ),
    ] = False,
    sparse_model: SparseModelOpt = None,
    multivector_model: MultiVectorModelOpt = None,
) -> None:
    """Chunk, embed and store documents; re-running skips what is already stored.

    Documents the store refuses are listed on stderr (exit status 1); the others are written.
    """
    quiet = bool(getattr(ctx.obj, "quiet", False))
    with user_errors():
        if chunk_tokens is not None and chunk_overlap >= chunk_tokens:
            raise typer.BadParameter(
                f"--chunk-overlap {chunk_overlap} must be below --chunk-tokens {chunk_tokens}"
            )
        options = IngestOptions.pick({**locals(), "progress": progress and not quiet})
        token_models.check_ray(ray_address, sparse_model, multivector_model)
        files = FileOptions(
            text_field=text_field, id_field=id_field, encoding=encoding, errors=encoding_errors
        )
        config = EmbedderConfig(**settings)
        documents = load_paths(paths, **files.loader_arguments(max_document_bytes))
        sink = _open_sink(
            qdrant, milvus, collection, api_key, layout, hybrid, qdrant_edge=qdrant_edge, storage=storage
        )
        with _closing(sink):
            kinds = token_models.known_vector_kinds(sparse_model, multivector_model)
            _check_before_engine(sink, config, layout, options, kinds)
            if ray_address is not None:
                from vllm_embed.ray_data.api import run_paths

                # Joins Ray only after the checks that need none (repeated ids, the manifest).
                report = run_paths(
                    paths, sink, config, options, files, replicas=replicas, ray_address=ray_address
                )
            else:
                # Every file is read once ahead (repeated ids, broken records) before anything starts.
                scan = scan_input(documents, options, files.text_field, files.id_field)
                embedder = _start_engine(config)  # its engine starts only if something must be embedded
                extra = token_models.start_extra(sparse_model, multivector_model, config)
                with _closing(embedder, extra):
                    report = run_ingest(
                        documents,
                        embedder=embedder,
                        sink=sink,
                        options=options,
                        scan=scan,
                        text_field=files.text_field,
                        id_field=files.id_field,
                        extra=extra,
                    )
    _print_ingest_report(report, as_json)


def _print_ingest_report(report: Any, as_json: bool) -> None:
    rejected: tuple[tuple[str, str], ...] = tuple(getattr(report, "rejected", ()))
    if as_json:
        print(_json_report(report, rejected))
    else:
        out.print(str(report))
    for doc_id, reason in rejected:
        err.print(
            f"[bold red]rejected:[/] {escape(printable(json.dumps(doc_id, ensure_ascii=False)))}: "
            f"{escape(printable(reason))}"
        )
    if rejected:
        fail(f"{len(rejected)} document(s) were not stored (listed above); the others were written")


@embedder_options(skip=("model", "dimensions"))
@storage_options(QdrantSearchSettings, MilvusIndexSettings, skip=("index", "index_params"))
@fusion_options()
def search(
    query: Annotated[str, typer.Argument(metavar="QUERY", help="The search text.")],
    collection: CollectionOpt,
    settings: EngineSettings,
    storage: StorageFlags,
    fusion: dict[str, Any],
    qdrant: QdrantOpt = None,
    qdrant_edge: QdrantEdgeOpt = None,
    milvus: MilvusOpt = None,
    api_key: ApiKeyOpt = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="Number of hits.")] = 5,
    filters: Annotated[
        list[str] | None,
        typer.Option("--filter", help="Metadata key=value the hits must match (repeatable)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the hits as a JSON array.")] = False,
    mode: Annotated[
        SearchMode | None,
        typer.Option(
            "--mode",
            help="dense (vectors), sparse (the collection's BM25 or learned sparse vectors) or hybrid (both, "
            "fused as --fusion says) \\[default: hybrid for a collection with sparse vectors, else dense].",
            show_default=False,
        ),
    ] = None,
    rerank: Annotated[
        str | None,
        typer.Option(
            "--rerank",
            help="Reorder the first-stage hits with this reranker (a Qwen3-Reranker or a cross-encoder), "
            "run in this process with the same --dtype and parallelism.",
            show_default=False,
        ),
    ] = None,
    candidates: Annotated[
        int | None,
        typer.Option(
            "--candidates",
            min=1,
            help="First-stage hits: with --rerank, the hits reranked \\[default: 50]; in hybrid mode, also "
            "the points each search passes to the fusion \\[default: 4 × the hits fetched].",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="Model \\[default: the one in the collection's manifest; another one is refused].",
            show_default=False,
        ),
    ] = None,
    late_interaction: Annotated[
        bool,
        typer.Option(
            "--multivector/--no-multivector",
            help="Reorder the first-stage hits by MaxSim with the collection's multi-vector model, when it "
            "has one (--candidates of them, default 50).",
        ),
    ] = True,
) -> None:
    """Search a collection with the models recorded in its manifest.

    Embedding the query first starts the model's vLLM engine here: a minute or more on a CPU.

    For many searches, point at a running server: --backend openai --base-url URL (sparse needs no engine).
    """
    with user_errors():
        metadata_filter = _parse_filters(filters or [])
        fused = fusion_settings(**fusion)
        sink = _open_sink(qdrant, milvus, collection, api_key, qdrant_edge=qdrant_edge, storage=storage)
        with _closing(sink):
            manifest = require_manifest(sink)
            resolved = resolve_mode(manifest, mode, collection)
            config = EmbedderConfig(model=model or manifest.model, dimensions=manifest.dimensions, **settings)
            _check_before_engine(sink, config, None)
            embedder = _start_engine(config)
            extra = token_models.search_models(manifest, resolved, late_interaction, config)
            with _closing(embedder):
                reranker = _start_reranker(rerank, config) if rerank is not None else None
                with _closing(reranker, extra):
                    hits = run_search(
                        query,
                        embedder=embedder,
                        sink=sink,
                        top_k=top_k,
                        filter=metadata_filter,
                        mode=mode,
                        candidates=candidates,
                        rerank=reranker,
                        fusion=fused,
                        sparse=extra.sparse,
                        multivector=extra.multivector if late_interaction else False,
                    )
    if as_json:
        print(json.dumps([h.to_dict() for h in hits], ensure_ascii=False, indent=2))
    else:
        print_hits(hits, out)
