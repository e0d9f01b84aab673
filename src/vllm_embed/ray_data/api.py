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
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from vllm_embed._optional import require
from vllm_embed.config import EmbedderConfig
from vllm_embed.ingest.core import Counters, open_collection
from vllm_embed.ingest.documents import DEFAULT_MAX_METADATA_BYTES
from vllm_embed.ingest.duplicates import OnDuplicate
from vllm_embed.ingest.loaders import DEFAULT_MAX_DOCUMENT_BYTES, load_path
from vllm_embed.ingest.options import FileOptions, IngestOptions
from vllm_embed.ingest.report import IngestReport
from vllm_embed.ingest.splitters import SplitterLike
from vllm_embed.ray_data.blocks import METADATA_JSON, chunk_block, chunk_texts, select_block, write_block
from vllm_embed.ray_data.planning import RunPlan, check_replicas, engine_config, plan_run
from vllm_embed.ray_data.repeats import Repeats, find_repeats, read_path, superseded_by_source
from vllm_embed.ray_data.replica import DatasetReplica, IngestReplica, Kind, replica_resources
from vllm_embed.ray_data.session import check_ray_address, ray_session
from vllm_embed.sinks.base import Sink
from vllm_embed.sinks.spec import SinkSpec

if TYPE_CHECKING:
    from ray.data import Dataset
    from ray.data.datasource import Datasink

_WORKER_SINKS: dict[bytes, Sink] = {}


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
    check_replicas(replicas, batch_size)
    if kind not in ("document", "query"):
        raise ValueError(f"kind={kind!r} must be 'document' or 'query'")
    engine = engine_config(model, config, settings)
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


def _worker_sink(spec: SinkSpec) -> Sink:
    """One sink per worker process and collection, opened on first use."""
    key = pickle.dumps(spec)
    if key not in _WORKER_SINKS:
        _WORKER_SINKS[key] = spec.open()
    return _WORKER_SINKS[key]


def _select_task(table: pa.Table, spec: SinkSpec) -> pa.Table:
    return select_block(_worker_sink(spec), table)


def _store_datasink(spec: SinkSpec) -> Datasink[Counters]:
    from ray.data.datasource import Datasink

    class StoreDatasink(Datasink[Counters]):
        """Writes blocks from Ray workers into a store server; the driver's copy sums the counts."""

        def __init__(self) -> None:
            self.counts = Counters()

        def write(self, blocks: Iterable[Any], ctx: Any) -> Counters:
            sink = _worker_sink(spec)
            counts = Counters()
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
    options = IngestOptions.pick(locals())
    if on_duplicate == "last" and not check_duplicates:
        raise ValueError("on_duplicate='last' needs the duplicate check: drop check_duplicates=False")
    plan = plan_run(
        sink,
        engine_config(model, config, settings),
        options,
        replicas=replicas,
        text_column=text_column,
        id_column=id_column,
        metadata_columns=None if metadata_columns is None else tuple(metadata_columns),
        splitter_column=splitter_column,
    )
    repeats = find_repeats(ds, plan.documents, on_duplicate) if check_duplicates else Repeats()
    open_collection(sink, plan.manifest, rechunk=rechunk, hybrid=hybrid)
    return _run(
        repeats.apply(ds, plan.documents),
        plan,
        sink,
        replicas=replicas,
        writers=writers,
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
        max_metadata_bytes: Largest document metadata in bytes (as JSON); a larger one is rejected.
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
    files = FileOptions(text_field=text_field, id_field=id_field, encoding=encoding, errors=encoding_errors)
    options = IngestOptions.pick(locals())
    return run_paths(paths, sink, config, options, files, replicas=replicas, ray_address=ray_address)


def run_paths(
    paths: Sequence[str | Path],
    sink: Sink,
    config: EmbedderConfig,
    options: IngestOptions,
    files: FileOptions,
    *,
    replicas: int = 1,
    ray_address: str | None = None,
) -> IngestReport:
    """`ingest_paths` with its settings as `IngestOptions` and `FileOptions` (the CLI calls this)."""
    ray: Any = require("ray", "vllm_embed.ray_data")
    if ray_address is not None:
        check_ray_address(ray_address)
    loader = files.loader_arguments(options.max_document_bytes)
    sources = [load_path(p, **loader) for p in paths]  # checks every path before anything runs
    skip, superseded = superseded_by_source(sources, files.text_field, files.id_field, options.on_duplicate)
    plan = plan_run(
        sink,
        config,
        options,
        replicas=replicas,
        text_column="text",
        id_column="id",
        metadata_columns=METADATA_JSON,
        splitter_column=None,
    )
    open_collection(sink, plan.manifest, rechunk=options.rechunk)
    with contextlib.nullcontext() if ray_address is None else ray_session(ray_address):
        items = [{"index": index, "path": str(path)} for index, path in enumerate(paths)]
        ds = ray.data.from_items(items).flat_map(read_path, fn_kwargs={"loader": loader, "skip": skip})
        return _run(ds, plan, sink, replicas=replicas, writers=None, superseded=superseded)


def replica_batches(selected: Any, batch_size: int) -> Any:
    """`selected` in blocks of at most `batch_size` rows, streamed (no shuffle), for the replicas' stage.

    A file is read as one block, and an actor pool hands each block to one actor: without the split, one
    replica would embed a whole file while the others wait, and nothing of it could be written before its
    last chunk is embedded.
    """
    return selected.repartition(target_num_rows_per_block=batch_size)


def _embedded(selected: Any, plan: RunPlan, replicas: int) -> Any:
    """The replicas' stage: every row to embed gets its vector."""
    batch_size = plan.options.batch_size
    return replica_batches(selected, batch_size).map_batches(
        IngestReplica,
        fn_constructor_kwargs={"config": plan.config, "expected": plan.expected},
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=_replica_pool(replicas),
        **replica_resources(plan.config, replicas),
    )


def _run(
    ds: Any, plan: RunPlan, sink: Sink, *, replicas: int, writers: int | None, superseded: int = 0
) -> IngestReport:
    ray: Any = require("ray", "vllm_embed.ray_data")
    started = time.perf_counter()
    ray.data.DataContext.get_current().enable_progress_bars = plan.options.progress
    chunked = ds.map_batches(chunk_block, fn_kwargs={"plan": plan.documents}, batch_format="pyarrow")
    spec = sink.spec()
    if spec.shared:
        selected = chunked.map_batches(_select_task, fn_kwargs={"spec": spec}, batch_format="pyarrow")
        datasink = _store_datasink(spec)
        _embedded(selected, plan, replicas).write_datasink(datasink, concurrency=writers)
        counts: Counters = datasink.counts  # type: ignore[attr-defined]
    else:
        # The driver holds the only handle on an embedded store: it looks each block up as it comes, and
        # starts no replica when everything is stored already.
        counts = Counters()
        refs, to_embed = [], 0
        for block in chunked.iter_batches(batch_size=None, batch_format="pyarrow"):
            selected_block = select_block(sink, block)
            to_embed += len(chunk_texts(selected_block)[0])
            refs.append(ray.put(selected_block))
        if to_embed == 0:
            for ref in refs:
                counts.add(write_block(sink, ray.get(ref)))
        else:
            embedded = _embedded(ray.data.from_arrow_refs(refs), plan, replicas)
            for block in embedded.iter_batches(batch_size=None, batch_format="pyarrow"):
                counts.add(write_block(sink, block))
    counts.superseded += superseded
    return counts.report(time.perf_counter() - started)
