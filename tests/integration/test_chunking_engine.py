"""The token handoff with the real engines: chunks tokenised by the ingest chunker embed exactly as their
text does (prompted MiniLM and the tiny EOS-appending Qwen3), share cache entries, and a default ingest keeps
every chunk within one model input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ingest_fixtures import open_sink

from vllm_embed import Embedder
from vllm_embed.ingest import ingest, load_path, search
from vllm_embed.ingest.chunk_settings import make_chunker
from vllm_embed.ingest.splitters import DEFAULT_CHUNK_TOKENS

PARAGRAPHS = [
    " ".join(f"Paragraph {p}, sentence {s}: the printing press spread books across Europe." for s in range(9))
    for p in range(8)
]
TEXTS = ["\n\n".join(PARAGRAPHS), "日本語の文章です。🙂 emoji and CJK text.", "short", "short"]


@pytest.mark.parametrize("engine", ["minilm_embedder", "qwen3_embedder"])
def test_token_path_equals_text_path(engine: str, request: pytest.FixtureRequest) -> None:
    embedder: Embedder = request.getfixturevalue(engine)
    split = make_chunker(embedder, chunk_tokens=64).split(TEXTS)
    assert len(split[0]) > 3
    pieces = [c for text_chunks in split for c in text_chunks]
    texts = [c.text for c in pieces]
    ids = [c.token_ids or [] for c in pieces]
    by_tokens = embedder._embed_document_tokens(texts, ids)
    by_text = embedder.embed_documents(texts)
    assert np.min(np.sum(by_tokens * by_text, axis=1)) >= 0.9999
    # Long input past the model's limit: the same long-input policy on both paths.
    long_text = " ".join(PARAGRAPHS * 3)
    long_ids = embedder.tokenizer(embedder.format_document(long_text), add_special_tokens=False)["input_ids"]
    assert len(long_ids) > (embedder.max_input_tokens or 0)
    [by_tokens_long] = embedder._embed_document_tokens([long_text], [long_ids])
    [by_text_long] = embedder.embed_documents([long_text])
    assert float(by_tokens_long @ by_text_long) >= 0.9999


def test_both_paths_share_cache_entries(minilm_path: str, tmp_path: Path) -> None:
    with Embedder(minilm_path, dtype="float32", cache=tmp_path / "cache.sqlite") as cached:
        pieces = [c for chunks in make_chunker(cached, chunk_tokens=64).split(TEXTS[:2]) for c in chunks]
        texts = [c.text for c in pieces]
        first = cached._embed_document_tokens(texts, [c.token_ids or [] for c in pieces])
        assert cached.cache_stats.hits == 0
        again = cached.embed_documents(texts)
        assert cached.cache_stats.hits == len(set(texts))
        np.testing.assert_allclose(first, again, atol=1e-6)


def test_default_ingest_fits_every_chunk_in_one_model_input(tmp_path: Path, minilm_embedder) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    sections = [f"## Part {i}\n\n" + PARAGRAPHS[i] for i in range(len(PARAGRAPHS))]
    (corpus / "guide.md").write_text("# Printing\n\n" + "\n\n".join(sections * 3))
    (corpus / "essay.txt").write_text("\n\n".join(PARAGRAPHS * 4))
    limit = min(DEFAULT_CHUNK_TOKENS, minilm_embedder.max_model_len or DEFAULT_CHUNK_TOKENS)
    with open_sink("qdrant", tmp_path) as sink:
        report = ingest(load_path(corpus), embedder=minilm_embedder, sink=sink, progress=False)
        manifest = sink.read_manifest()
        assert manifest is not None and (manifest.splitter, manifest.chunk_tokens) == ("text", limit)
        hits = search("printing press in Europe", embedder=minilm_embedder, sink=sink, top_k=report.chunks)
        assert len(hits) == report.chunks > 4
        tokenizer = minilm_embedder.tokenizer
        for hit in hits:
            assert len(tokenizer(hit.text)["input_ids"]) <= limit
            if hit.doc_id == "guide.md":
                assert hit.text.startswith("#")  # Markdown chunks begin at a heading
        # The stored vectors (embedded from token ids) are those of the stored texts.
        top = hits[0]
        [vector] = minilm_embedder.embed_documents([top.text])
        assert abs(float(vector @ minilm_embedder.embed_query("printing press in Europe")) - top.score) < 1e-3
