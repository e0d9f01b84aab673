"""`embed_dataset` and `ingest_dataset`: the Embedder and the ingest pipeline as Ray Data stages.

The ingest is read → chunk (Ray tasks) → skip what is stored → embed (replica actors) → write. A store
server is written by a Ray `Datasink` from the workers, and looked up by Ray tasks; an embedded store (a
Qdrant local path, a Milvus Lite file, or any sink built on `client=`) can be opened by one process only,
so the driver does its lookups (one per block) and streams the vectors into it.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from vllm_embed._optional import require
from vllm_embed.config import EmbedderConfig
from vllm_embed.ingest.chunk_settings import chunking_fields, record_chunking
from vllm_embed.ingest.duplicates import DuplicateCheck, duplicate_error, superseded_positions
from vllm_embed.ingest.loaders import DEFAULT_MAX_DOCUMENT_BYTES, load_path
from vllm_embed.ingest.report import IngestReport
from vllm_embed.ingest.splitters import SplitterName
from vllm_embed.ray_data.blocks import (
    METADATA_JSON,
    DocumentPlan,
    PlannedEngine,
    WriteCounts,
    chunk_block,
    chunk_texts,
    document_ids,
    plan_chunker,
    select_block,
    write_block,
)
from vllm_embed.ray_data.replica import DatasetReplica, IngestReplica, Kind, replica_resources
from vllm_embed.sinks.base import BaseSink, Manifest, Sink

if TYPE_CHECKING:
    from ray.data import Dataset
    from ray.data.datasource import Datasink

_SinkRecipe = tuple[type[BaseSink], tuple[Any, ...], dict[str, Any]]
_WORKER_SINKS: dict[bytes, Sink] = {}


def _config(model: str | None, config: EmbedderConfig | None, settings: dict[str, Any]) -> EmbedderConfig:
    if config is not None:
        if model is not None or settings:
            raise ValueError("pass either config=EmbedderConfig(...) or model= and settings, not both")
        return config
    if model is None:
        raise ValueError("pass model= (or config=EmbedderConfig(...))")
    return EmbedderConfig(model=model, **settings)


def _check_replicas(replicas: int, batch_size: int) -> None:
    if replicas < 1:
        raise ValueError(f"replicas={replicas} must be at least 1")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be at least 1")


def embed_dataset(
    ds: Dataset,
    *,
    model: str | None = None,
    replicas: int = 1,
    text_column: str = "text",
    output_column: str = "embedding",
    kind: Kind = "document",
    batch_size: int = 256,
    instruction: str | None = None,
    config: EmbedderConfig | None = None,
    **settings: Any,
) -> Dataset:
    """Adds each row's embedding to a Ray Dataset, with `replicas` engines working in parallel.

    Lazy like any Ray Data transform: nothing runs until the result is consumed. Each replica is an
    `Embedder` in a Ray actor asking for `tensor_parallel_size × pipeline_parallel_size` GPUs where the
    cluster has GPUs, else CPUs; the vectors are exactly what `Embedder.embed_documents` (or
    `embed_queries`) returns.

    Args:
        ds: The rows; `text_column` must hold strings.
        model: Model id or path (or give `config=`).
        replicas: Engines (Ray actors) embedding in parallel.
        text_column: Column of the texts.
        output_column: Column added with the vectors (float32 arrays of the model's or `dimensions` size).
        kind: `"document"` for passages, `"query"` for search queries (with the model's query prompt).
        batch_size: Rows per engine call.
        instruction: Query instruction (`kind="query"`), instead of the model's default.
        config: The engine settings as one `EmbedderConfig`, instead of `model=` and `**settings`.
        **settings: Other `EmbedderConfig` fields (`dimensions`, `tensor_parallel_size`, `dtype`, …).

    Returns:
        The same rows, other columns unchanged, with `output_column` added.

    Raises:
        ValueError: For invalid arguments.
    """
    require("ray", "vllm_embed.ray_data")
    _check_replicas(replicas, batch_size)
    if kind not in ("document", "query"):
        raise ValueError(f"kind={kind!r} must be 'document' or 'query'")
    engine = _config(model, config, settings)
    dataset: Any = ds
    result: Dataset = dataset.map_batches(
        DatasetReplica,
        fn_constructor_kwargs={
            "config": engine,
            "kind": kind,
            "text_column": text_column,
            "output_column": output_column,
            "instruction": instruction,
        },
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=_replica_pool(replicas),
        **replica_resources(engine, replicas),
    )
    return result


def _replica_pool(replicas: int) -> Any:
    """A fixed pool of `replicas` actors (`map_batches(concurrency=N)` in older Ray Data)."""
    from ray.data import ActorPoolStrategy

    return ActorPoolStrategy(size=replicas)


def _plan_engine(config: EmbedderConfig) -> tuple[dict[str, Any], int | None]:
    """What the replicas' engines will report (`describe()`), and their longest input, without an engine.

    The replicas check it when they start, so a collection's manifest is checked before any replica runs.
    """
    from vllm_embed._version import __version__
    from vllm_embed.profiles import detect_profile

    profile = detect_profile(config.model, config.revision, config.profile)
    dimension = profile.check_dimensions(config.dimensions, config.model)
    if dimension is None:
        raise ValueError(f"the output size of {config.model} is unknown; pass dimensions=")
    description = {
        "model": config.model,
        "profile": profile.family,
        "pooling": profile.pooling,
        "dimensions": dimension,
        "normalized": True,
        "vllm_embed_version": __version__,
    }
    return description, PlannedEngine.load(config).max_input_tokens


def _recipe(sink: Sink) -> _SinkRecipe | None:
    """How a worker opens `sink`'s collection; `None` for a store only this process can open."""
    if not isinstance(sink, BaseSink):
        return None
    args, kwargs = sink.construction
    if kwargs.get("client") is not None:
        return None
    target = kwargs.get("url") or kwargs.get("location") or kwargs.get("uri") or ""
    if "://" not in str(target):
        return None
    return type(sink), args, kwargs


def _worker_sink(recipe: _SinkRecipe) -> Sink:
    """One sink per worker process and collection, opened on first use."""
    key = pickle.dumps(recipe)
    if key not in _WORKER_SINKS:
        cls, args, kwargs = recipe
        _WORKER_SINKS[key] = cls(*args, **kwargs)  # type: ignore[assignment]
    return _WORKER_SINKS[key]


def _select_task(table: pa.Table, recipe: _SinkRecipe) -> pa.Table:
    return select_block(_worker_sink(recipe), table)


def _store_datasink(recipe: _SinkRecipe) -> Datasink[WriteCounts]:
    from ray.data.datasource import Datasink

    class StoreDatasink(Datasink[WriteCounts]):
        """Writes blocks from Ray workers into a store server; the driver's copy sums the counts."""

        def __init__(self) -> None:
            self.counts = WriteCounts()

        def write(self, blocks: Iterable[Any], ctx: Any) -> WriteCounts:
            sink = _worker_sink(recipe)
            counts = WriteCounts()
            for block in blocks:
                counts.add(write_block(sink, pa.table(block) if not isinstance(block, pa.Table) else block))
            return counts

        def on_write_complete(self, write_result: Any) -> None:
            for counts in write_result.write_returns:
                self.counts.add(counts)

    return StoreDatasink()


def ingest_dataset(
    ds: Dataset,
    *,
    sink: Sink,
    model: str | None = None,
    replicas: int = 1,
    id_column: str | None = "id",
    text_column: str = "text",
    metadata_columns: Sequence[str] | None = None,
    chunk_tokens: int | None = None,
    chunk_overlap: int = 0,
    splitter: SplitterName | None = None,
    rechunk: bool = False,
    hybrid: bool = False,
    batch_size: int = 256,
    writers: int | None = None,
    max_document_bytes: int | None = DEFAULT_MAX_DOCUMENT_BYTES,
    check_duplicates: bool = True,
    progress: bool = True,
    config: EmbedderConfig | None = None,
    **settings: Any,
) -> IngestReport:
    """Chunks, embeds and stores a Ray Dataset of documents with `replicas` engines; idempotent, resumable.

    The same guarantees as `vllm_embed.ingest`: deterministic point ids, the collection's manifest checked
    (or created) before any replica starts, chunks already stored with the same text skipped before
    embedding (one lookup per block), stale trailing chunks of shorter new versions deleted, store errors
    retried; a run killed anywhere (driver or replica) converges on re-run, embedding only what is missing.
    A replica that dies is restarted by Ray and its batch retried.

    A store server (`QdrantSink(url=…)`, `MilvusSink(uri="http://…")`) is looked up and written from the
    Ray workers (the sink is opened again there with its constructor's arguments); an embedded store or a
    sink built on `client=` is looked up and written by this process.

    Args:
        ds: One row per document.
        sink: Where vectors go.
        model: Model id or path (or give `config=`).
        replicas: Engines (Ray actors) embedding in parallel.
        id_column: Column of the document id; `None` uses a hash of the text.
        text_column: Column of the text.
        metadata_columns: Columns stored as metadata; `None` stores every other column.
        chunk_tokens: Longest chunk in tokens, with the document prompt and special tokens; `None` uses
            `DEFAULT_CHUNK_TOKENS` (512), or the model's longest input when smaller (as `ingest`).
        chunk_overlap: Tokens shared by consecutive chunks of a document.
        splitter: `"text"`, `"markdown"` or `"tokens"` (as `ingest`; a function is not available here);
            `None`: each document's own `Document.splitter`, else `"text"`.
        rechunk: Accept chunking that differs from the collection's (as `ingest`).
        hybrid: Whether the collection holds sparse (BM25) vectors too; the sink must be built with its own
            hybrid setting on (this only checks that it is).
        batch_size: Chunks per engine call.
        writers: Concurrent write tasks for a store server (`None`: as many as Ray schedules).
        max_document_bytes: Largest document text in bytes (UTF-8); a larger one is rejected.
        check_duplicates: Read the ids once before the run and refuse a repeated id (as `ingest` does).
        progress: Show Ray Data's progress bars.
        config: The engine settings as one `EmbedderConfig`, instead of `model=` and `**settings`.
        **settings: Other `EmbedderConfig` fields (`dimensions`, `tensor_parallel_size`, `dtype`, …).

    Returns:
        The counts of the run, with each replica's throughput.

    Raises:
        DuplicateDocumentError: For a document id that occurs twice.
        ManifestMismatchError: If the collection was embedded with another model, size or layout, or
            chunked otherwise (without `rechunk=True`).
        SinkError: If the store fails for good; everything written before stays valid.
        ValueError: For invalid arguments.
    """
    plan = _prepare(
        sink,
        _config(model, config, settings),
        replicas=replicas,
        batch_size=batch_size,
        hybrid=hybrid,
        chunk_tokens=chunk_tokens,
        chunk_overlap=chunk_overlap,
        splitter=splitter,
        rechunk=rechunk,
        text_column=text_column,
        id_column=id_column,
        metadata_columns=None if metadata_columns is None else tuple(metadata_columns),
        max_document_bytes=max_document_bytes,
    )
    if check_duplicates:
        _refuse_duplicates(ds, plan)
    return _run(ds, plan, sink, replicas=replicas, batch_size=batch_size, writers=writers, progress=progress)


def ingest_paths(
    paths: Sequence[str | Path],
    *,
    sink: Sink,
    config: EmbedderConfig,
    replicas: int = 1,
    text_field: str = "text",
    id_field: str | None = None,
    chunk_tokens: int | None = None,
    chunk_overlap: int = 0,
    splitter: SplitterName | None = None,
    rechunk: bool = False,
    batch_size: int = 256,
    max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES,
    encoding: str | None = None,
    encoding_errors: str | None = None,
    progress: bool = True,
) -> IngestReport:
    """The CLI's `ingest --ray`: files read by Ray tasks (one per path), then as `ingest_dataset`.

    Documents get the ids and metadata `load_path` gives them, so the points are the same as a
    single-process ingest of the same files.
    """
    ray: Any = require("ray", "vllm_embed.ray_data")
    loader: dict[str, Any] = {
        "text_field": text_field,
        "id_field": id_field,
        "max_document_bytes": max_document_bytes,
    }
    if encoding is not None:
        loader["encoding"] = encoding
    if encoding_errors is not None:
        loader["errors"] = encoding_errors
    sources = [load_path(p, **loader) for p in paths]  # checks every path before anything runs
    plan = _prepare(
        sink,
        config,
        replicas=replicas,
        batch_size=batch_size,
        hybrid=False,
        chunk_tokens=chunk_tokens,
        chunk_overlap=chunk_overlap,
        splitter=splitter,
        rechunk=rechunk,
        text_column="text",
        id_column="id",
        metadata_columns=METADATA_JSON,
        max_document_bytes=max_document_bytes,
    )
    for source in sources:
        superseded_positions(source, text_field, id_field, "error")
    ds = ray.data.from_items([{"path": str(p)} for p in paths]).flat_map(
        _read_path, fn_kwargs={"loader": loader}
    )
    return _run(ds, plan, sink, replicas=replicas, batch_size=batch_size, writers=None, progress=progress)


def _read_path(row: dict[str, Any], loader: dict[str, Any]) -> list[dict[str, Any]]:
    import json

    return [
        {
            "id": doc.id,
            "text": doc.text,
            "metadata": json.dumps(dict(doc.metadata), ensure_ascii=False),
            "splitter": doc.splitter,
        }
        for doc in load_path(row["path"], **loader)
    ]


def _prepare(
    sink: Sink,
    config: EmbedderConfig,
    *,
    replicas: int,
    batch_size: int,
    hybrid: bool,
    chunk_tokens: int | None,
    chunk_overlap: int,
    splitter: SplitterName | None,
    rechunk: bool,
    text_column: str,
    id_column: str | None,
    metadata_columns: tuple[str, ...] | str | None,
    max_document_bytes: int | None,
) -> tuple[DocumentPlan, dict[str, Any], EmbedderConfig]:
    """Checks the arguments and the collection's manifest, before any replica starts."""
    require("ray", "vllm_embed.ray_data")
    _check_replicas(replicas, batch_size)
    description, max_input_tokens = _plan_engine(config)
    plan = DocumentPlan(
        config=config,
        chunk_tokens=chunk_tokens,
        chunk_overlap=chunk_overlap,
        splitter=splitter,
        text_column=text_column,
        id_column=id_column,
        metadata_columns=metadata_columns,
        max_document_bytes=max_document_bytes,
        layout=sink.layout.name,
    )
    # The chunker the Ray tasks build, once here: the manifest records its settings as `ingest` does.
    manifest = Manifest.from_description(description, layout=sink.layout.name).model_copy(
        update=chunking_fields(plan_chunker(plan))
    )
    sink.prepare(manifest)
    record_chunking(sink, manifest, rechunk=rechunk)
    if hybrid and getattr(sink.read_manifest(), "sparse", None) is None:
        raise ValueError(
            f"hybrid=True needs a sink that stores sparse vectors: build {sink!r} with hybrid=True"
        )
    expected = {**description, "max_input_tokens": max_input_tokens}
    del expected["vllm_embed_version"]
    return plan, expected, config


def _refuse_duplicates(ds: Any, prepared: tuple[DocumentPlan, dict[str, Any], EmbedderConfig]) -> None:
    plan = prepared[0]
    seen = DuplicateCheck()
    position = 0
    ids = ds.map_batches(document_ids, fn_kwargs={"plan": plan}, batch_format="pyarrow")
    for batch in ids.iter_batches(batch_size=None, batch_format="pyarrow"):
        for doc_id in batch.column("doc_id").to_pylist():
            earlier = seen.see(doc_id, position)
            if earlier is not None:
                raise duplicate_error(doc_id, earlier, position)
            position += 1


def _embedded(
    selected: Any, config: EmbedderConfig, expected: dict[str, Any], replicas: int, batch_size: int
) -> Any:
    """The replicas' stage: every chunk row gets its vector."""
    return selected.map_batches(
        IngestReplica,
        fn_constructor_kwargs={"config": config, "expected": expected},
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=_replica_pool(replicas),
        **replica_resources(config, replicas),
    )


def _run(
    ds: Any,
    prepared: tuple[DocumentPlan, dict[str, Any], EmbedderConfig],
    sink: Sink,
    *,
    replicas: int,
    batch_size: int,
    writers: int | None,
    progress: bool,
) -> IngestReport:
    ray: Any = require("ray", "vllm_embed.ray_data")
    started = time.perf_counter()
    plan, expected, config = prepared
    ray.data.DataContext.get_current().enable_progress_bars = progress
    chunked = ds.map_batches(chunk_block, fn_kwargs={"plan": plan}, batch_format="pyarrow")
    recipe = _recipe(sink)
    if recipe is not None:
        selected = chunked.map_batches(_select_task, fn_kwargs={"recipe": recipe}, batch_format="pyarrow")
        datasink = _store_datasink(recipe)
        _embedded(selected, config, expected, replicas, batch_size).write_datasink(
            datasink, concurrency=writers
        )
        counts: WriteCounts = datasink.counts  # type: ignore[attr-defined]
    else:
        # The driver holds the only handle on an embedded store: it looks each block up as it comes, and
        # starts no replica when everything is stored already.
        counts = WriteCounts()
        refs, to_embed = [], 0
        for block in chunked.iter_batches(batch_size=None, batch_format="pyarrow"):
            selected_block = select_block(sink, block)
            to_embed += len(chunk_texts(selected_block)[0])
            refs.append(ray.put(selected_block))
        if to_embed == 0:
            for ref in refs:
                counts.add(write_block(sink, ray.get(ref)))
        else:
            selected = ray.data.from_arrow_refs(refs)
            embedded = _embedded(selected, config, expected, replicas, batch_size)
            for block in embedded.iter_batches(batch_size=None, batch_format="pyarrow"):
                counts.add(write_block(sink, block))
    throughput = tuple(
        counts.embedded_by[name] / seconds if seconds > 0 else 0.0
        for name, seconds in sorted(counts.seconds_by.items())
        if counts.embedded_by[name] > 0
    )
    return IngestReport(
        documents=counts.documents,
        chunks=counts.chunks,
        embedded=counts.written,
        skipped=counts.skipped,
        written=counts.written,
        seconds=time.perf_counter() - started,
        deleted_from=counts.deleted_from,
        rejected=tuple(counts.rejected),
        replica_chunks_per_second=throughput,
    )
