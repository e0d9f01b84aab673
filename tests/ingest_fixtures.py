"""Helpers for the ingest, sink and CLI tests: a Fake embedder for pure pipeline logic, and real stores."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qdrant_client.http import models

from vllm_embed.sinks import MilvusSink, QdrantSink
from vllm_embed.sinks.base import BaseSink
from vllm_embed.sinks.layouts import LAYOUTS

STORES = ("qdrant", "milvus")
STORE_LAYOUTS = [
    pytest.param((store, layout), id=f"{store}-{layout}") for store in STORES for layout in LAYOUTS
]
"""Every store in every payload layout."""


class FakeHashEmbedder:
    """Fake embedder for pipeline logic: a text's vector is a hash of the text (no meaning at all).

    Records every `embed_documents` call so tests can see what was (not) embedded.
    """

    def __init__(
        self,
        tokenizer: Any = None,
        *,
        model: str = "fake-model",
        dimension: int = 8,
        max_input_tokens: int = 32,
    ) -> None:
        self.tokenizer = tokenizer
        self.model = model
        self.dimension = dimension
        self.max_input_tokens = max_input_tokens
        self.calls: list[list[str]] = []

    def _vector(self, text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        vector = np.random.default_rng(seed).normal(size=self.dimension).astype(np.float32)
        return vector / np.linalg.norm(vector)

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return (
            np.stack([self._vector(t) for t in texts]) if texts else np.zeros((0, self.dimension), np.float32)
        )

    def embed_query(self, text: str, instruction: str | None = None) -> np.ndarray:
        return self._vector(text)

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "profile": "fake",
            "dimensions": self.dimension,
            "normalized": True,
            "pooling": "mean",
            "vllm_embed_version": "test",
        }

    @property
    def embedded(self) -> list[str]:
        return [t for call in self.calls for t in call]


def _word_seed(word: str) -> int:
    return int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")


class FakeHashSparseEmbedder:
    """Fake learned sparse embedder for store and pipeline logic (no meaning at all).

    Each word is a vocabulary id (a hash), its weight a hash of word and text; `SparseVector`s as
    `SparseEmbedder` returns them.
    """

    def __init__(self, model: str = "fake-splade", vocabulary: int = 30_000) -> None:
        self.model, self.vocabulary = model, vocabulary
        self.calls: list[list[str]] = []

    def _vector(self, text: str) -> Any:
        from vllm_embed.learned_sparse import SparseVector

        terms: dict[int, float] = {}
        for word in text.lower().split():
            token = _word_seed(word) % self.vocabulary
            weight = 0.5 + (_word_seed(f"{word}|{text}") >> 20) % 1000 / 400  # no ties between texts
            terms[token] = max(terms.get(token, 0.0), weight)
        return SparseVector.from_terms(terms.keys(), terms.values())

    def embed_documents(self, texts: list[str]) -> list[Any]:
        self.calls.append(list(texts))
        return [self._vector(text) for text in texts]

    def embed_query(self, text: str) -> Any:
        return self._vector(text)

    def describe(self) -> dict[str, Any]:
        return {"model": self.model, "revision": None, "kind": "learned-sparse", "max_terms": None}


class FakeHashMultiVectorEmbedder:
    """Fake multi-vector embedder for store and pipeline logic: one hashed unit vector per word."""

    def __init__(self, model: str = "fake-colbert", dimensions: int = 6) -> None:
        self.model, self.dimensions = model, dimensions
        self.calls: list[list[str]] = []

    def _matrix(self, text: str) -> np.ndarray:
        rows = [
            np.random.default_rng(_word_seed(word)).normal(size=self.dimensions)
            for word in text.lower().split()
        ] or [np.ones(self.dimensions)]
        matrix = np.asarray(rows, dtype=np.float64)
        return (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)

    def embed_documents(self, texts: list[str]) -> list[np.ndarray]:
        self.calls.append(list(texts))
        return [self._matrix(text) for text in texts]

    def embed_query(self, text: str) -> np.ndarray:
        return self._matrix(text)

    def describe(self) -> dict[str, Any]:
        return {"model": self.model, "revision": None, "kind": "multivector", "dimensions": self.dimensions}


def maxsim(query: np.ndarray, document: np.ndarray) -> float:
    """Brute-force late interaction: each query row's best dot product with a document row, summed."""
    return float((query.astype(np.float64) @ document.astype(np.float64).T).max(axis=1).sum())


def open_sink(kind: str, root: Path, collection: str = "docs", **kwargs: Any) -> BaseSink:
    """Opens a real embedded store under `root`: Qdrant local mode or Milvus Lite."""
    if kind == "qdrant":
        return QdrantSink(collection, path=str(root / "qdrant"), **kwargs)
    if kind == "milvus":
        return MilvusSink(collection, uri=str(root / "milvus.db"), **kwargs)
    if kind == "qdrant-edge":
        from vllm_embed.sinks import QdrantEdgeSink

        return QdrantEdgeSink(collection, path=str(root / "qdrant-edge"), **kwargs)
    raise ValueError(kind)


def dump_store(sink: QdrantSink | MilvusSink) -> dict[str, tuple[dict[str, Any], np.ndarray]]:
    """Returns every point, in any layout: id → ({text, doc_id, chunk_index, metadata}, vector).

    The stored fields are read back through the sink's layout, so the same assertions hold in every layout
    (what each framework's own store reads is tested in the adapters' suites).
    """
    layout = sink.layout
    points: dict[str, tuple[dict[str, Any], np.ndarray]] = {}
    if isinstance(sink, QdrantSink):
        offset = None
        while True:
            records, offset = sink.client.scroll(
                sink.collection, limit=1000, offset=offset, with_payload=True, with_vectors=True
            )
            for r in records:
                vector = r.vector[layout.qdrant_vector] if isinstance(r.vector, dict) else r.vector
                hit = layout.hit("qdrant", str(r.id), 0.0, r.payload or {})
                points[str(r.id)] = (_fields(hit), np.asarray(vector, dtype=np.float32))
            if offset is None:
                return points
    rows = sink.client.query(
        sink.collection, filter=f'{layout.milvus_id} != ""', output_fields=["*"], limit=16384
    )
    for row in rows:
        hit = layout.hit("milvus", str(row[layout.milvus_id]), 0.0, row)
        points[hit.id] = (_fields(hit), np.asarray(row[layout.milvus_vector], dtype=np.float32))
    return points


def _fields(hit: Any) -> dict[str, Any]:
    return {"text": hit.text, "doc_id": hit.doc_id, "chunk_index": hit.chunk_index, "metadata": hit.metadata}


def assert_same_store(actual: dict[str, Any], expected: dict[str, Any], atol: float = 1e-4) -> None:
    """Asserts two dumps hold the same points, payloads and (within `atol`) vectors."""
    assert sorted(actual) == sorted(expected)
    for point_id, (payload, vector) in expected.items():
        got_payload, got_vector = actual[point_id]
        assert got_payload == payload, point_id
        np.testing.assert_allclose(got_vector, vector, atol=atol)


def poison(sink: QdrantSink | MilvusSink, point_ids: list[str]) -> None:
    """Stores what each store accepts from a bad backend: Qdrant a zero vector, Milvus NaN."""
    layout = sink.layout
    if isinstance(sink, QdrantSink):
        zero = [0.0] * 8
        points = [
            models.PointVectors(id=pid, vector={layout.qdrant_vector: zero} if layout.qdrant_vector else zero)
            for pid in point_ids
        ]
        sink.client.update_vectors(sink.collection, points=points, wait=True)
        return
    rows = sink.client.get(sink.collection, ids=point_ids, output_fields=["*"])
    sink.client.upsert(sink.collection, [{**row, layout.milvus_vector: [float("nan")] * 8} for row in rows])


def reload_when_built(sink: Any, attempts: int = 10) -> None:
    """Releases and loads the sink's Milvus collection once its index files can be read.

    Milvus Lite reports an index "Finished" slightly before its file is complete: a load then fails with "File
    is too small" or "Not an Arrow file" (seen about one run in five under load). That is a Lite race, retried
    here; any other error is raised.
    """
    from pymilvus.exceptions import MilvusException

    wait_for_indexes(sink)
    for attempt in range(attempts):
        sink.client.release_collection(sink.collection)
        try:
            sink.client.load_collection(sink.collection)
            return
        except MilvusException as exc:
            partial = "File is too small" in str(exc) or "Not an Arrow file" in str(exc)
            if not partial or attempt == attempts - 1:
                raise
            time.sleep(0.5)


def wait_for_indexes(sink: Any, timeout: float = 30.0) -> None:
    """Waits until Milvus has built every index of the sink's collection (it builds them in the background
    after a flush; releasing and loading sooner can read a partial index file)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = [
            sink.client.describe_index(sink.collection, n) for n in sink.client.list_indexes(sink.collection)
        ]
        if all(s.get("state") == "Finished" and not s.get("pending_index_rows") for s in states):
            return
        time.sleep(0.05)
    raise AssertionError(f"Milvus Lite did not finish building the indexes in {timeout} s")
