"""`advise()`: sample the corpus, embed it once, measure every configuration and recommend one."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vllm_embed.advise.measure import dimension_ladder, evaluate
from vllm_embed.advise.result import (
    Advice,
    AdviceError,
    AdviceRow,
    embedder_settings,
    recommend,
    store_settings,
)
from vllm_embed.advise.sampling import (
    _documents,
    _embed_chunks,
    _embed_queries,
    _sampled_chunks,
    query_from_chunk,
)
from vllm_embed.advise.store import STORES, _measured_in_store
from vllm_embed.ingest.chunk_settings import make_chunker
from vllm_embed.ingest.documents import DocumentLike
from vllm_embed.ingest.embedder_api import SupportsEmbedding
from vllm_embed.ingest.splitters import SplitterLike

if TYPE_CHECKING:
    from vllm_embed.config import EmbedderConfig
    from vllm_embed.profiles import ModelProfile


def advise(
    source: str | Path | Sequence[Path] | Iterable[DocumentLike],
    *,
    model: str | None = None,
    embedder: SupportsEmbedding | None = None,
    config: EmbedderConfig | None = None,
    queries: Sequence[str] | None = None,
    sample: int = 2000,
    held_out: int = 200,
    target_recall: float = 0.95,
    top_k: int = 10,
    dimensions: Sequence[int] | None = None,
    store: str | None = None,
    seed: int = 0,
    chunk_tokens: int | None = None,
    chunk_overlap: int = 0,
    splitter: SplitterLike | None = None,
    text_field: str = "text",
    id_field: str | None = None,
) -> Advice:
    """Measures which vector size and quantization keep recall on a sample of your corpus.

    The sample is chunked as `ingest` chunks (same chunker, prompt and settings) and embedded once at the
    native size with the document prompt; see the module documentation for how each configuration is
    simulated and how memory is estimated.

    Without `queries`, `held_out` further sampled chunks are held out of the corpus and each gives one query:
    its longest sentence, cut to `QUERY_WORDS` words (`query_from_chunk`); a small corpus holds out at most a
    fifth of its chunks. Queries are embedded with the query prompt.

    Args:
        source: A path (file or directory, as `ingest` reads them), a list of `Path`s, or documents
            (`Document`s, strings, dicts, framework documents: strings are texts, not paths).
        model: Model to load (an `Embedder` is started and closed here); or give `embedder` or `config`.
        embedder: An `Embedder` to use (not closed); its size is the one measured as native.
        config: `EmbedderConfig` to start an Embedder with (its `dimensions` is ignored: native is measured).
        queries: Your queries, one string each; `None` derives them from held-out chunks.
        sample: Chunks to embed as the corpus (a uniform sample of all chunks, fixed by `seed`).
        held_out: Chunks held out to derive queries from, when `queries` is `None`.
        target_recall: Recall@k the recommendation must reach.
        top_k: The k of recall@k.
        dimensions: Sizes to measure instead of the profile's ladder (`dimension_ladder`).
        store: `"qdrant-edge"` to measure the rows of the recommended size again through real `QdrantEdgeSink`
            collections (in a temporary directory), configured as each row says, with the HNSW graph and
            quantized vectors built (`STORE_INDEXING_THRESHOLD_KB`): approximate search counts too.
        seed: Seed of the sampling.
        chunk_tokens: As for `ingest`.
        chunk_overlap: As for `ingest`.
        splitter: As for `ingest`.
        text_field: Key of the text in dict documents and records.
        id_field: Key of the id in dict documents and records.

    Returns:
        The measured rows, the recommendation and the settings that create it.

    Raises:
        AdviceError: For invalid settings (given before anything is embedded), too few chunks, or a size the
            model does not support.
    """
    if sum(option is not None for option in (model, embedder, config)) != 1:
        raise AdviceError("give exactly one of model=, embedder= or config=")
    check_options(sample=sample, held_out=held_out, target_recall=target_recall, top_k=top_k, store=store)
    if queries is not None:
        queries = [query for query in queries if query.strip()]
        if not queries:
            raise AdviceError("queries holds no query: pass at least one non-blank line")
    documents = _documents(source, text_field, id_field)
    owned = None
    if embedder is None:
        from vllm_embed.config import EmbedderConfig
        from vllm_embed.embedder import Embedder

        built = config or EmbedderConfig(model=str(model))
        built = built.model_copy(update={"dimensions": None})
        embedder = owned = Embedder(config=built)
    try:
        return _advise(
            documents,
            embedder,
            queries=queries,
            sample=sample,
            held_out=held_out,
            target_recall=target_recall,
            top_k=top_k,
            dimensions=dimensions,
            store=store,
            seed=seed,
            chunker=make_chunker(
                embedder, chunk_tokens=chunk_tokens, chunk_overlap=chunk_overlap, splitter=splitter
            ),
            text_field=text_field,
            id_field=id_field,
        )
    finally:
        if owned is not None:
            owned.close()


def check_options(
    *,
    sample: int = 2000,
    held_out: int = 200,
    target_recall: float = 0.95,
    top_k: int = 10,
    store: str | None = None,
) -> None:
    """Checks `advise`'s settings before anything is read or embedded (the command line calls it first too).

    Args:
        sample: As for `advise`.
        held_out: As for `advise`.
        target_recall: As for `advise`.
        top_k: As for `advise`.
        store: As for `advise`.

    Raises:
        AdviceError: For the first setting that cannot work, naming the fix.
    """
    if sample < 2 or held_out < 1 or top_k < 1:
        raise AdviceError(f"sample={sample}, held_out={held_out} and top_k={top_k} must be at least 2, 1, 1")
    if sample <= top_k:
        raise AdviceError(
            f"sample={sample} must be above top_k={top_k}: recall@{top_k} searches more than {top_k} chunks; "
            "pass a larger sample or a smaller top_k"
        )
    if not 0 < target_recall <= 1:
        raise AdviceError(f"target_recall={target_recall} must be above 0 and at most 1")
    if store is not None and store not in STORES:
        raise AdviceError(f"store={store!r} must be one of {STORES} (or None)")


def _advise(
    documents: Iterable[DocumentLike],
    embedder: SupportsEmbedding,
    *,
    queries: Sequence[str] | None,
    sample: int,
    held_out: int,
    target_recall: float,
    top_k: int,
    dimensions: Sequence[int] | None,
    store: str | None,
    seed: int,
    chunker: Any,
    text_field: str,
    id_field: str | None,
) -> Advice:
    wanted = sample if queries is not None else sample + held_out
    chunks, total = _sampled_chunks(documents, chunker, wanted, seed, text_field, id_field)
    if queries is None:
        holdout = held_out if total >= wanted else min(held_out, len(chunks) // 5)
        derived = [(i, query_from_chunk(chunks[i].text)) for i in range(holdout)]
        query_texts = [text for _i, text in derived if text]
        chunks = chunks[holdout:]
    else:
        query_texts = list(queries)
    if len(chunks) <= top_k or not query_texts:
        held = f" and {len(query_texts)} usable queries held out" if queries is None else ""
        raise AdviceError(
            f"the corpus gave {total} chunk(s), which left {len(chunks)} sampled chunk(s) to search{held}: "
            f"advise needs more than top_k={top_k} to search and at least one query; pass more documents, "
            "a smaller top_k, or queries="
        )
    description = embedder.describe()
    profile: ModelProfile | None = getattr(embedder, "profile", None)
    doc_vectors = _embed_chunks(embedder, chunks)
    query_vectors = _embed_queries(embedder, query_texts)
    native = int(doc_vectors.shape[1])
    model_native = (profile.native_dimension if profile is not None else None) or native
    if dimensions is None:
        sizes = dimension_ladder(profile, native)
    else:
        sizes = sorted(set(dimensions), reverse=True)
        if profile is not None:
            for size in sizes:
                try:
                    profile.check_dimensions(size, str(description.get("model")))
                except ValueError as exc:
                    raise AdviceError(str(exc)) from exc
    rows = evaluate(doc_vectors, query_vectors, dimensions=sizes, top_k=top_k)
    chosen = recommend(rows, target_recall)
    if chosen is not None and store is not None:
        # Every configuration at the recommended size: the recommendation and its alternatives.
        measured = {
            id(row): _measured_in_store(
                store, row, doc_vectors, query_vectors, top_k, str(description.get("model"))
            )
            for row in rows
            if row.dimensions == chosen.dimensions
        }
        rows = [
            AdviceRow(**{**row.to_dict(), "store_recall_at_k": measured[id(row)]})
            if id(row) in measured
            else row
            for row in rows
        ]
        chosen = next(row for row in rows if row.label == chosen.label)
    return Advice(
        model=str(description.get("model")),
        native_dimensions=native,
        top_k=top_k,
        target_recall=target_recall,
        sample_chunks=len(chunks),
        corpus_chunks=total,
        queries=len(query_texts),
        queries_from="given" if queries is not None else "held-out",
        rows=rows,
        recommendation=chosen,
        embedder_settings={} if chosen is None else embedder_settings(chosen, model_native),
        qdrant_settings={} if chosen is None else store_settings(chosen) or {},
        milvus_settings=None if chosen is None else store_settings(chosen, "milvus"),
        store=store,
    )
