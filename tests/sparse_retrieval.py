"""What the adapter packages' learned-sparse store tests share: a small corpus and the references they check.

The LangChain and LlamaIndex tests index `CORPUS` with their framework's own Qdrant store and compare what
it holds and finds with `SparseEmbedder` itself and a brute-force dot product.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vllm_embed import SparseEmbedder

CORPUS = {
    "crc": "The storage writer calls zlib.crc32 on every block before it is flushed.",
    "hash": "Checksums and hash digests let a download be verified against tampering.",
    "parity": "Parity bits catch single-bit errors in memory and on networks.",
    "coffee": "Espresso is brewed by forcing hot water through finely ground coffee.",
    "bread": "A good sourdough needs flour, water, salt and a lively starter.",
    "bikes": "Check the tyre pressure and oil the chain before a long bicycle ride.",
    "vllm": "vLLM is a high-throughput inference and serving engine for language models.",
    "qdrant": "Qdrant is a vector database that stores embeddings and searches them.",
}
QUERIES = ["coffee brewed with hot water", "verify a download checksum", "oil the bicycle chain"]


def check_stored(stored: dict[str, Any], splade: SparseEmbedder) -> None:
    """Asserts that `stored` (corpus key: Qdrant `SparseVector`) holds `splade`'s vector of each text."""
    assert set(stored) == set(CORPUS)
    for key, expected in zip(CORPUS, splade.embed_documents(list(CORPUS.values())), strict=True):
        assert stored[key].indices == expected.indices.tolist(), key
        np.testing.assert_allclose(stored[key].values, expected.values, rtol=1e-6)


def brute_force_top(splade: SparseEmbedder, query: str, k: int = 5) -> tuple[list[str], list[float]]:
    """The corpus keys a sparse search for `query` must return (score > 0, best first) and their scores."""
    vector = splade.embed_query(query)
    documents = splade.embed_documents(list(CORPUS.values()))
    scores = {key: vector.dot(document) for key, document in zip(CORPUS, documents, strict=True)}
    top = sorted((key for key in scores if scores[key] > 0), key=lambda key: -scores[key])[:k]
    return top, [scores[key] for key in top]
