"""`embed_dataset` and `ingest_dataset`: the Embedder and the ingest pipeline as Ray Data stages.

The ingest is read → chunk (Ray tasks) → skip what is stored → embed (replica actors) → write. A store
server is written by a Ray `Datasink` from the workers, and looked up by Ray tasks; an embedded store (a
Qdrant local path, a Milvus Lite file, or any sink built on `client=`) can be opened by one process only,
so the driver does its lookups (one per block) and streams the vectors into it.
"""

from __future__ import annotations

import contextlib
import pickle
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from vllm_embed._optional import require
from vllm_embed.config import EmbedderConfig
from vllm_embed.errors import UnmanagedCollectionError
from vllm_embed.ingest.chunk_settings import check_chunking, chunking_fields, record_chunking
from vllm_embed.ingest.documents import DEFAULT_MAX_METADATA_BYTES, Document
from vllm_embed.ingest.duplicates import (
    ON_DUPLICATE_CHOICES,
    DuplicateCheck,
    OnDuplicate,
    duplicate_error,
    superseded_positions,
)
from vllm_embed.ingest.loaders import DEFAULT_MAX_DOCUMENT_BYTES, ChainedSource, load_path, located_ids
from vllm_embed.ingest.report import IngestReport
from vllm_embed.ingest.splitters import SplitterLike
from vllm_embed.ray_data.blocks import (
    METADATA_JSON,
    DocumentPlan,
    PlannedEngine,
    WriteCounts,
    chunk_block,
    chunk_texts,
    id_hashes,
    plan_chunker,
    repeated_rows,
    select_block,
    without_documents,
    write_block,
)
from vllm_embed.ray_data.replica import DatasetReplica, IngestReplica, Kind, replica_resources
from vllm_embed.ray_data.session import check_ray_address, ray_session
from vllm_embed.sinks.base import Manifest, Sink
from vllm_embed.sinks.spec import SinkSpec

if TYPE_CHECKING:
    from ray.data import Dataset
    from ray.data.datasource import Datasink

_Prepared = tuple[DocumentPlan, dict[str, Any], EmbedderConfig]
_LAST_VERSIONS_PER_BLOCK = 1024  # the last versions of repeated ids re-enter the run in blocks of this size
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
    result: Dataset = replica_batches(ds, batch_size).map_batches(
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


def _worker_sink(spec: SinkSpec) -> Sink:
    """One sink per worker process and collection, opened on first use."""
    key = pickle.dumps(spec)
    if key not in _WORKER_SINKS:
        _WORKER_SINKS[key] = spec.open()
    return _WORKER_SINKS[key]


def _select_task(table: pa.Table, spec: SinkSpec) -> pa.Table:
    return select_block(_worker_sink(spec), table)


def _store_datasink(spec: SinkSpec) -> Datasink[WriteCounts]:
    from ray.data.datasource import Datasink

    class StoreDatasink(Datasink[WriteCounts]):
        """Writes blocks from Ray workers into a store server; the driver's copy sums the counts."""

        def __init__(self) -> None:
            self.counts = WriteCounts()

        def write(self, blocks: Iterable[Any], ctx: Any) -> WriteCounts:
            sink = _worker_sink(spec)
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
    splitter: SplitterLike | None = None,
    splitter_column: str | None = None,
    rechunk: bool = False,
    hybrid: bool = False,
    batch_size: int = 256,
    writers: int | None = None,
    max_document_bytes: int | None = DEFAULT_MAX_DOCUMENT_BYTES,
    max_metadata_bytes: int | None = DEFAULT_MAX_METADATA_BYTES,
    on_duplicate: OnDuplicate = "error",
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

    Repeated document ids are found before anything is written, in two passes over the dataset: Ray tasks
    hash every id and this process keeps the 64-bit hashes (8 bytes per document) to find the repeated
    ones; only when some repeat, a second pass, in the dataset's order (Ray Data's `preserve_order`: files
    in order, rows in file order), reads the rows of those ids. With `on_duplicate="last"` this process
    keeps the last version of each repeated id (memory grows with the repeated documents, not with the
    dataset), and the run ingests it in place of all of them.

    Args:
        ds: One row per document.
        sink: Where vectors go.
        model: Model id or path (or give `config=`).
        replicas: Engines (Ray actors) embedding in parallel.
        id_column: Column of the document id; `None` uses a hash of the text.
        text_column: Column of the text.
        metadata_columns: Columns stored as metadata; `None` stores every other column (but
            `splitter_column`).
        chunk_tokens: Longest chunk in tokens, with the document prompt and special tokens; `None` uses
            `DEFAULT_CHUNK_TOKENS` (512), or the model's longest input when smaller (as `ingest`).
        chunk_overlap: Tokens shared by consecutive chunks of a document.
        splitter: `"text"`, `"markdown"`, `"tokens"` or a function `str -> list[str]`, as for `ingest`
            (a function is sent to the Ray workers, so it must be picklable by Ray: a module's function,
            or a lambda or closure over picklable values); `None`: each row's `splitter_column`, else
            `"text"`.
        splitter_column: Column naming each row's splitter (`"text"`, `"markdown"`, `"tokens"`, or null
            for `"text"`), used when `splitter` is `None`, e.g. `"markdown"` for rows read from `.md`
            files; not stored as metadata. `None`: every row is split with `"text"`.
        rechunk: Accept chunking that differs from the collection's (as `ingest`).
        hybrid: Whether the collection holds sparse (BM25) vectors too; the sink must be built with its own
            hybrid setting on (this only checks that it is).
        batch_size: Chunks per engine call.
        writers: Concurrent write tasks for a store server (`None`: as many as Ray schedules).
        max_document_bytes: Largest document text in bytes (UTF-8); a larger one is rejected.
        max_metadata_bytes: Largest document metadata in bytes (as JSON); a larger one is rejected.
        on_duplicate: For a document id that occurs twice: `"error"` raises `DuplicateDocumentError`
            naming both positions, before anything is written; `"last"` ingests the last version only.
        check_duplicates: Look for repeated ids before the run (`False` skips both passes, for a dataset
            known to have unique ids; then `on_duplicate` must be `"error"`).
        progress: Show Ray Data's progress bars.
        config: The engine settings as one `EmbedderConfig`, instead of `model=` and `**settings`.
        **settings: Other `EmbedderConfig` fields (`dimensions`, `tensor_parallel_size`, `dtype`, …).

    Returns:
        The counts of the run, with each replica's throughput.

    Raises:
        DuplicateDocumentError: For a document id that occurs twice, with `on_duplicate="error"`.
        ManifestMismatchError: If the collection was embedded with another model, size or layout, or
            chunked otherwise (without `rechunk=True`).
        SinkError: If the store fails for good; everything written before stays valid.
        ValueError: For invalid arguments.
    """
    _check_on_duplicate(on_duplicate)
    if on_duplicate == "last" and not check_duplicates:
        raise ValueError("on_duplicate='last' needs the duplicate check: drop check_duplicates=False")
    prepared, manifest = _plan(
        sink,
        _config(model, config, settings),
        replicas=replicas,
        batch_size=batch_size,
        chunk_tokens=chunk_tokens,
        chunk_overlap=chunk_overlap,
        splitter=splitter,
        splitter_column=splitter_column,
        rechunk=rechunk,
        text_column=text_column,
        id_column=id_column,
        metadata_columns=None if metadata_columns is None else tuple(metadata_columns),
        max_document_bytes=max_document_bytes,
        max_metadata_bytes=max_metadata_bytes,
    )
    repeats = _find_repeats(ds, prepared[0], on_duplicate) if check_duplicates else _Repeats()
    _open_collection(sink, manifest, rechunk=rechunk, hybrid=hybrid)
    return _run(
        repeats.apply(ds, prepared[0]),
        prepared,
        sink,
        replicas=replicas,
        batch_size=batch_size,
        writers=writers,
        progress=progress,
        superseded=repeats.superseded,
    )


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
    splitter: SplitterLike | None = None,
    rechunk: bool = False,
    batch_size: int = 256,
    max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES,
    max_metadata_bytes: int | None = DEFAULT_MAX_METADATA_BYTES,
    encoding: str | None = None,
    encoding_errors: str | None = None,
    on_duplicate: OnDuplicate = "error",
    progress: bool = True,
    ray_address: str | None = None,
) -> IngestReport:
    """The CLI's `ingest --ray`: files read by Ray tasks (one per path), then as `ingest_dataset`.

    Documents get the ids and metadata `load_path` gives them, so the points are the same as a
    single-process ingest of the same files. Repeated ids are found by this process before anything is
    written or Ray is joined, from the files' ids, as `ingest` does.

    Args:
        paths: Files or directories, as for `load_path`.
        sink: Where vectors go.
        config: The engine settings.
        replicas: Engines (Ray actors) embedding in parallel.
        text_field: Text field or column of records.
        id_field: Id field or column of records (`None`: `"id"` when present).
        chunk_tokens: As for `ingest_dataset`.
        chunk_overlap: As for `ingest_dataset`.
        splitter: As for `ingest_dataset` (`None`: markdown for `.md` files, else text).
        rechunk: As for `ingest_dataset`.
        batch_size: Chunks per engine call.
        max_document_bytes: Largest document text in bytes (UTF-8); a larger one is rejected.
        max_metadata_bytes: As for `ingest_dataset`.
        encoding: Encoding of the files (`None`: the loaders' default).
        encoding_errors: What to do with undecodable bytes (`None`: the loaders' default).
        on_duplicate: As for `ingest_dataset`.
        progress: Show Ray Data's progress bars.
        ray_address: Join Ray at this address for the run (as `ray_session`), after every check that
            needs no Ray; `None`: Ray as it is (initialised already, or started by Ray Data).

    Returns:
        The counts of the run.

    Raises:
        DuplicateDocumentError: For a document id that occurs twice, with `on_duplicate="error"`.
        ManifestMismatchError: As for `ingest_dataset`.
    """
    ray: Any = require("ray", "vllm_embed.ray_data")
    _check_on_duplicate(on_duplicate)
    if ray_address is not None:
        check_ray_address(ray_address)
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
    skip, superseded = _superseded_by_source(sources, text_field, id_field, on_duplicate)
    prepared, manifest = _plan(
        sink,
        config,
        replicas=replicas,
        batch_size=batch_size,
        chunk_tokens=chunk_tokens,
        chunk_overlap=chunk_overlap,
        splitter=splitter,
        splitter_column=None,
        rechunk=rechunk,
        text_column="text",
        id_column="id",
        metadata_columns=METADATA_JSON,
        max_document_bytes=max_document_bytes,
        max_metadata_bytes=max_metadata_bytes,
    )
    _open_collection(sink, manifest, rechunk=rechunk, hybrid=False)
    with contextlib.nullcontext() if ray_address is None else ray_session(ray_address):
        items = [{"index": index, "path": str(path)} for index, path in enumerate(paths)]
        ds = ray.data.from_items(items).flat_map(_read_path, fn_kwargs={"loader": loader, "skip": skip})
        return _run(
            ds,
            prepared,
            sink,
            replicas=replicas,
            batch_size=batch_size,
            writers=None,
            progress=progress,
            superseded=superseded,
        )


def _check_on_duplicate(on_duplicate: str) -> None:
    if on_duplicate not in ON_DUPLICATE_CHOICES:
        raise ValueError(f"on_duplicate={on_duplicate!r} must be one of {ON_DUPLICATE_CHOICES}")


def _superseded_by_source(
    sources: Sequence[Iterable[Document]], text_field: str, id_field: str | None, on_duplicate: OnDuplicate
) -> tuple[dict[int, frozenset[int]], int]:
    """The positions, within each source, of the documents a later version replaces, and their number.

    Raises:
        DuplicateDocumentError: For the first repeated id (with its files and lines), with "error".
    """
    superseded = superseded_positions(ChainedSource(sources), text_field, id_field, on_duplicate)
    skip: dict[int, frozenset[int]] = {}
    start = 0
    for index, source in enumerate(sources):
        if not superseded:
            break
        end = start + sum(1 for _ in located_ids(source))
        own = frozenset(p - start for p in superseded if start <= p < end)
        if own:
            skip[index] = own
        start = end
    return skip, len(superseded)


def _read_path(
    row: dict[str, Any], loader: dict[str, Any], skip: dict[int, frozenset[int]]
) -> list[dict[str, Any]]:
    import json

    superseded = skip.get(row["index"], frozenset())
    return [
        {
            "id": doc.id,
            "text": doc.text,
            "metadata": json.dumps(dict(doc.metadata), ensure_ascii=False),
            "splitter": doc.splitter,
        }
        for position, doc in enumerate(load_path(row["path"], **loader))
        if position not in superseded
    ]


def _plan(
    sink: Sink,
    config: EmbedderConfig,
    *,
    replicas: int,
    batch_size: int,
    chunk_tokens: int | None,
    chunk_overlap: int,
    splitter: SplitterLike | None,
    splitter_column: str | None,
    rechunk: bool,
    text_column: str,
    id_column: str | None,
    metadata_columns: tuple[str, ...] | str | None,
    max_document_bytes: int | None,
    max_metadata_bytes: int | None,
) -> tuple[_Prepared, Manifest]:
    """Checks the arguments, and the collection's manifest if there is one; writes nothing."""
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
        splitter_column=splitter_column,
        max_metadata_bytes=max_metadata_bytes,
    )
    # The chunker the Ray tasks build, once here: the manifest records its settings as `ingest` does.
    manifest = Manifest.from_description(description, layout=sink.layout.name).model_copy(
        update=chunking_fields(plan_chunker(plan))
    )
    try:
        stored = sink.read_manifest()
    except UnmanagedCollectionError:
        stored = None  # `prepare` adopts it (adopt=True) or refuses it
    if stored is not None:
        stored.require_compatible(manifest, sink.collection)
        check_chunking(stored, manifest, sink.collection, rechunk=rechunk)
    expected = {**description, "max_input_tokens": max_input_tokens}
    del expected["vllm_embed_version"]
    return (plan, expected, config), manifest


def _open_collection(sink: Sink, manifest: Manifest, *, rechunk: bool, hybrid: bool) -> None:
    """Creates the collection, or checks it, and records this run's chunking (before any replica starts)."""
    sink.prepare(manifest)
    record_chunking(sink, manifest, rechunk=rechunk)
    if hybrid and getattr(sink.read_manifest(), "sparse", None) is None:
        raise ValueError(
            f"hybrid=True needs a sink that stores sparse vectors: build {sink!r} with hybrid=True"
        )


@dataclass(frozen=True)
class _Repeats:
    """The document ids a dataset repeats, and the last version of each (with `on_duplicate="last"`)."""

    doc_ids: frozenset[str] = frozenset()
    last: pa.Table = field(default_factory=lambda: pa.table({}))
    superseded: int = 0

    def apply(self, ds: Any, plan: DocumentPlan) -> Any:
        """`ds` with the rows of repeated ids replaced by the last version of each."""
        if not self.doc_ids:
            return ds
        from ray.data import from_arrow

        kept = ds.map_batches(
            without_documents, fn_kwargs={"plan": plan, "doc_ids": self.doc_ids}, batch_format="pyarrow"
        )
        pieces = [
            self.last.slice(start, _LAST_VERSIONS_PER_BLOCK)
            for start in range(0, self.last.num_rows, _LAST_VERSIONS_PER_BLOCK)
        ]
        return kept.union(from_arrow(pieces))


def _find_repeats(ds: Any, plan: DocumentPlan, on_duplicate: OnDuplicate) -> _Repeats:
    """Finds the repeated document ids of `ds` (see `ingest_dataset`).

    Raises:
        DuplicateDocumentError: For the first repeated id (by the position of its second row), with "error".
    """
    hashes = [
        batch.column("hash").to_numpy()
        for batch in ds.map_batches(id_hashes, fn_kwargs={"plan": plan}, batch_format="pyarrow").iter_batches(
            batch_size=None, batch_format="pyarrow"
        )
    ]
    values, counts = np.unique(
        np.concatenate(hashes) if hashes else np.empty(0, np.uint64), return_counts=True
    )
    candidates = frozenset(int(h) for h in values[counts > 1])
    if not candidates:
        return _Repeats()
    # Equal hashes are most likely equal ids; the second pass reads the ids themselves, in order.
    rows = ds.map_batches(
        repeated_rows,
        fn_kwargs={"plan": plan, "hashes": candidates, "keep_rows": on_duplicate == "last"},
        batch_format="pyarrow",
    )
    options = rows.context.execution_options
    preserved, options.preserve_order = options.preserve_order, True
    seen, offset = DuplicateCheck(), 0
    last: dict[str, bytes] = {}
    repeated: set[str] = set()
    superseded = 0
    try:
        for batch in rows.iter_batches(batch_size=None, batch_format="pyarrow"):
            columns = [batch.column(name).to_pylist() for name in ("doc_id", "index", "rows", "row")]
            for doc_id, index, count, row in zip(*columns, strict=True):
                if index < 0:
                    offset += count
                    continue
                earlier = seen.see(doc_id, offset + index)
                if earlier is not None:
                    if on_duplicate == "error":
                        raise duplicate_error(doc_id, earlier, offset + index)
                    repeated.add(doc_id)
                    superseded += 1
                last[doc_id] = row
    finally:
        options.preserve_order = preserved
    if not repeated:
        return _Repeats()
    versions = [pickle.loads(last[doc_id]) for doc_id in sorted(repeated)]
    return _Repeats(frozenset(repeated), pa.concat_tables(versions, promote_options="permissive"), superseded)


def replica_batches(selected: Any, batch_size: int) -> Any:
    """`selected` in blocks of at most `batch_size` rows, streamed (no shuffle), for the replicas' stage.

    A file is read as one block, and an actor pool hands each block to one actor: without the split, one
    replica would embed a whole file while the others wait, and nothing of it could be written before its
    last chunk is embedded.
    """
    return selected.repartition(target_num_rows_per_block=batch_size)


def _embedded(
    selected: Any, config: EmbedderConfig, expected: dict[str, Any], replicas: int, batch_size: int
) -> Any:
    """The replicas' stage: every chunk row gets its vector."""
    return replica_batches(selected, batch_size).map_batches(
        IngestReplica,
        fn_constructor_kwargs={"config": config, "expected": expected},
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=_replica_pool(replicas),
        **replica_resources(config, replicas),
    )


def _run(
    ds: Any,
    prepared: _Prepared,
    sink: Sink,
    *,
    replicas: int,
    batch_size: int,
    writers: int | None,
    progress: bool,
    superseded: int = 0,
) -> IngestReport:
    ray: Any = require("ray", "vllm_embed.ray_data")
    started = time.perf_counter()
    plan, expected, config = prepared
    ray.data.DataContext.get_current().enable_progress_bars = progress
    chunked = ds.map_batches(chunk_block, fn_kwargs={"plan": plan}, batch_format="pyarrow")
    spec = sink.spec()
    if spec.shared:
        selected = chunked.map_batches(_select_task, fn_kwargs={"spec": spec}, batch_format="pyarrow")
        datasink = _store_datasink(spec)
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
        superseded=superseded,
        replica_chunks_per_second=throughput,
    )
