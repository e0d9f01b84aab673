"""Search over a collection with the models its manifest names: dense, sparse or hybrid, MaxSim, rerank.

The sparse half is BM25 or learned; the late-interaction (MaxSim) stage reorders the candidates.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Literal, Protocol, get_args

import numpy as np
import numpy.typing as npt

from vllm_embed.ingest.embedder_api import (
    SupportsEmbedding,
    SupportsMultiVectorEmbedding,
    SupportsSparseEmbedding,
)
from vllm_embed.sinks.base import (
    CollectionNotFoundError,
    Hit,
    Manifest,
    MetadataFilter,
    MultiVector,
    Sink,
    SparseQuery,
)
from vllm_embed.sinks.fusion import FusionMethod, FusionSettings, fusion_settings
from vllm_embed.sinks.manifest import model_of

SearchMode = Literal["dense", "sparse", "hybrid"]
"""How `search` retrieves: the dense vectors, the collection's sparse vectors (BM25 or learned), or both
fused (`FusionSettings`)."""

SEARCH_MODES: tuple[str, ...] = get_args(SearchMode)


def require_manifest(sink: Sink) -> Manifest:
    """Returns the collection's manifest.

    Raises:
        CollectionNotFoundError: If the collection does not exist.
    """
    manifest = sink.read_manifest()
    if manifest is None:
        raise CollectionNotFoundError(
            f"collection {sink.collection!r} does not exist in {sink!r}; ingest into it first"
        )
    return manifest


def resolve_mode(manifest: Manifest, mode: str | None, collection: str) -> SearchMode:
    """Returns the search mode to use: `mode`, or `"hybrid"` for a hybrid collection and `"dense"` otherwise.

    Raises:
        ValueError: If `mode` is unknown, or sparse/hybrid on a dense-only collection.
    """
    if mode is None:
        return "hybrid" if manifest.sparse else "dense"
    if mode not in SEARCH_MODES:
        raise ValueError(f"mode={mode!r} is not a search mode; choose one of {', '.join(SEARCH_MODES)}")
    if mode != "dense" and not manifest.sparse:
        raise ValueError(
            f"mode={mode!r} needs sparse vectors, and collection {collection!r} is dense-only: search with "
            "mode='dense', or ingest with --hybrid or --sparse-model into a new collection"
        )
    return mode  # type: ignore[return-value]  # checked against SEARCH_MODES above


DEFAULT_CANDIDATES = 50
"""First-stage hits fetched for a reranker to reorder, when `candidates` is not given."""


class SupportsRerank(Protocol):
    """What `search` needs of a reranker (`vllm_embed.Reranker`)."""

    def score(self, query: str, documents: Sequence[str]) -> npt.NDArray[np.float32]:
        """Scores each document's relevance to `query`."""
        ...


def search(
    query: str,
    *,
    embedder: SupportsEmbedding,
    sink: Sink,
    top_k: int = 5,
    filter: MetadataFilter | None = None,
    mode: SearchMode | None = None,
    candidates: int | None = None,
    rerank: SupportsRerank | None = None,
    fusion: FusionMethod | FusionSettings | None = None,
    sparse: SupportsSparseEmbedding | None = None,
    multivector: SupportsMultiVectorEmbedding | Literal[False] | None = None,
    **fusion_options: Any,
) -> list[Hit]:
    """Returns the chunks that best match `query`, best first; with `rerank`, the first stage reordered.

    Args:
        query: The search text (embedded as a query, with the model's query prompt or instruction).
        embedder: An embedder for the model the collection was embedded with.
        sink: The collection to search.
        top_k: Number of hits.
        filter: Metadata fields the hits must equal, e.g. `{"lang": "en"}`.
        mode: `"dense"` (cosine similarity of the vectors), `"sparse"` (BM25 score) or `"hybrid"` (both,
            fused as `fusion` says); `None` is `"hybrid"` for a collection ingested with `--hybrid`,
            else `"dense"`. Each hit's `found_by` names the searches that found it.
        candidates: The first stage's size: with `rerank`, the hits handed to the reranker (50 when `None`);
            in hybrid mode, also the points each search passes to the fusion (4 × the hits fetched when
            `None`). At least `top_k`.
        rerank: A `Reranker` that reorders the first stage's hits; each hit keeps its first-stage `score`
            and gets its `rerank_score`.
        fusion: How hybrid mode fuses the two searches: `"rrf"` or `"weighted"`, or whole
            `FusionSettings` (`vllm_embed.sinks.fusion`; its defaults when `None`). Search-time only.
        sparse: The `SparseEmbedder` of the model a learned sparse collection names (its manifest's
            `sparse_model`), for sparse and hybrid mode; BM25 collections need none.
        multivector: The `MultiVectorEmbedder` of the model a collection with per-token vectors names (its
            manifest's `multivector`): the first stage's candidates (`candidates`, 50 when `None`) are
            reordered by MaxSim, computed in the store, each hit keeping its first-stage `score` and
            getting its `maxsim_score` (a reranker, if given, then orders them). `False` skips that stage.
        **fusion_options: The other `FusionSettings` fields: `rrf_k`, `dense_weight`, `sparse_weight`.

    Raises:
        CollectionNotFoundError: If the collection does not exist.
        ManifestMismatchError: If `embedder` is not the model (or size) the collection was embedded with.
        ValueError: For `top_k < 1`, `candidates < top_k`, an invalid filter or mode, a sparse/hybrid
            mode on a dense-only collection, or a model the collection names (learned sparse, per-token)
            that was not passed (the message names it).
        FusionSettingsError: For an unknown or out-of-range fusion setting.
    """
    fused = fusion_of(fusion, fusion_options)
    if top_k < 1:
        raise ValueError(f"top_k={top_k} must be at least 1")
    if candidates is not None and candidates < top_k:
        raise ValueError(f"candidates={candidates} must be at least top_k={top_k}")
    stored = require_manifest(sink)
    stored.require_compatible(
        Manifest.from_description(embedder.describe(), layout=sink.layout.name), sink.collection
    )
    mode = resolve_mode(stored, mode, sink.collection)
    sparse_query = _sparse_query(stored, sink.collection, query, sparse) if mode != "dense" else query
    late = _late_interaction(stored, sink.collection, multivector)
    staged = rerank is not None or late is not None
    fetch = max(top_k, candidates or DEFAULT_CANDIDATES) if staged else top_k
    if mode == "dense":
        hits = sink.search(embedder.embed_query(query), fetch, filter)
    elif mode == "sparse":
        hits = sink.sparse_search(sparse_query, fetch, filter)
    else:
        per_search = None if candidates is None else max(candidates, fetch)
        hits = sink.hybrid_search(sparse_query, embedder.embed_query(query), fetch, filter, per_search, fused)
    if late is not None:
        hits = maxsim_hits(sink, late.embed_query(query), hits, top_k if rerank is None else len(hits))
    if rerank is None:
        return hits
    return rerank_hits(query, hits, rerank, top_k)


def _sparse_query(
    stored: Manifest, collection: str, query: str, sparse: SupportsSparseEmbedding | None
) -> SparseQuery:
    """The sparse query of a collection: the text (BM25), or the learned model's vector of it.

    Raises:
        ValueError: For a learned collection without its model, or a model given to a BM25 collection.
        ManifestMismatchError: For another learned model than the collection's.
    """
    if stored.sparse != "learned":
        if sparse is not None:
            raise ValueError(
                f"collection {collection!r} holds BM25 vectors, made from the query text: leave out sparse="
            )
        return query
    if sparse is None:
        raise ValueError(
            f"collection {collection!r} holds learned sparse vectors of {stored.sparse_label()}: pass "
            f"sparse=SparseEmbedder(model={stored.sparse_label()}) (the CLI builds it from the manifest), "
            "or search with mode='dense'"
        )
    stored.require_compatible(stored.model_copy(update={"sparse_model": sparse.describe()}), collection)
    return sparse.embed_query(query)


def _late_interaction(
    stored: Manifest, collection: str, multivector: SupportsMultiVectorEmbedding | Literal[False] | None
) -> SupportsMultiVectorEmbedding | None:
    """The multi-vector embedder of the late-interaction stage (`None`: the search has none).

    Raises:
        ValueError: For a collection with per-token vectors without its model, or a model given to a
            collection without them.
        ManifestMismatchError: For another model than the collection's.
    """
    named = model_of(stored.multivector)
    if multivector is False:
        return None
    if named is None:
        if multivector is not None:
            raise ValueError(f"collection {collection!r} keeps no per-token vectors: leave out multivector=")
        return None
    if multivector is None:
        raise ValueError(
            f"collection {collection!r} keeps per-token vectors of {named!r} for a late-interaction stage: "
            f"pass multivector=MultiVectorEmbedder(model={named!r}) (the CLI builds it from the manifest), "
            "or multivector=False to search without it"
        )
    stored.require_compatible(stored.model_copy(update={"multivector": multivector.describe()}), collection)
    return multivector


def maxsim_hits(sink: Sink, query: MultiVector, hits: list[Hit], keep: int) -> list[Hit]:
    """Reorders first-stage hits by the store's MaxSim scores (ties keep the first-stage order); keeps `keep`.

    Each hit keeps its first-stage `score` and gets its `maxsim_score`; a point the store scored none for
    (deleted meanwhile) keeps `None` and goes last.
    """
    if not hits:
        return []
    scores = sink.maxsim(query, [hit.id for hit in hits])
    ranked = sorted(hits, key=lambda hit: (hit.id not in scores, -scores.get(hit.id, 0.0)))  # stable
    return [dataclasses.replace(hit, maxsim_score=scores.get(hit.id)) for hit in ranked[:keep]]


def fusion_of(fusion: FusionMethod | FusionSettings | None, options: dict[str, Any]) -> FusionSettings:
    """The `FusionSettings` of `search`'s `fusion` and `**fusion_options`.

    Raises:
        FusionSettingsError: For an unknown or out-of-range setting.
    """
    if isinstance(fusion, FusionSettings):
        return fusion_settings(**{**fusion.model_dump(), **options})
    return fusion_settings(**options) if fusion is None else fusion_settings(fusion=fusion, **options)


def rerank_hits(query: str, hits: list[Hit], rerank: SupportsRerank, top_k: int) -> list[Hit]:
    """Reorders first-stage hits by a reranker's scores (ties keep the first-stage order); keeps `top_k`.

    Raises:
        ValueError: If a score is not a finite number (a NaN or infinite score cannot order the hits, and
            JSON has no value for it).
    """
    if not hits:
        return []
    scores = np.asarray(rerank.score(query, [hit.text for hit in hits]), dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(scores))
    if bad.size:
        raise ValueError(
            f"the reranker's score of documents[{bad[0]}] is {scores[bad[0]]}, not a finite number; the hits "
            "were not reranked"
        )
    order = np.argsort(-scores, kind="stable")[:top_k]
    return [dataclasses.replace(hits[i], rerank_score=float(scores[i])) for i in order]
