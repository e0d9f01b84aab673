"""Helpers for the ingest, sink and CLI tests: a Fake embedder for pure pipeline logic, and real stores."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from vllm_embed.sinks import MilvusSink, QdrantSink
from vllm_embed.sinks.base import RetryingSink

STORES = ("qdrant", "milvus")


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


def open_sink(kind: str, root: Path, collection: str = "docs", **kwargs: Any) -> RetryingSink:
    """Opens a real embedded store under `root`: Qdrant local mode or Milvus Lite."""
    if kind == "qdrant":
        return QdrantSink(collection, path=str(root / "qdrant"), **kwargs)
    if kind == "milvus":
        return MilvusSink(collection, uri=str(root / "milvus.db"), **kwargs)
    raise ValueError(kind)


def dump_store(sink: QdrantSink | MilvusSink) -> dict[str, tuple[dict[str, Any], np.ndarray]]:
    """Returns every point of a collection: id → (payload, vector)."""
    if isinstance(sink, QdrantSink):
        points: dict[str, tuple[dict[str, Any], np.ndarray]] = {}
        offset = None
        while True:
            records, offset = sink.client.scroll(
                sink.collection, limit=1000, offset=offset, with_payload=True, with_vectors=True
            )
            for r in records:
                points[str(r.id)] = (dict(r.payload or {}), np.asarray(r.vector, dtype=np.float32))
            if offset is None:
                return points
    rows = sink.client.query(
        sink.collection,
        filter='id != ""',
        output_fields=["id", "vector", "text", "doc_id", "chunk_index", "metadata"],
        limit=16384,
    )
    return {
        str(row["id"]): (
            {k: row[k] for k in ("text", "doc_id", "chunk_index", "metadata")},
            np.asarray(row["vector"], dtype=np.float32),
        )
        for row in rows
    }


def assert_same_store(actual: dict[str, Any], expected: dict[str, Any], atol: float = 1e-4) -> None:
    """Asserts two dumps hold the same points, payloads and (within `atol`) vectors."""
    assert sorted(actual) == sorted(expected)
    for point_id, (payload, vector) in expected.items():
        got_payload, got_vector = actual[point_id]
        assert got_payload == payload, point_id
        np.testing.assert_allclose(got_vector, vector, atol=atol)
