"""Search quality with the real engine (the session's MiniLM) on both real embedded stores."""

from __future__ import annotations

from pathlib import Path

import pytest
from ingest_fixtures import STORES, open_sink

from vllm_embed.ingest import Document, ingest, search
from vllm_embed.sinks import CollectionNotFoundError

CORPUS = [
    Document(
        "The Eiffel Tower is a wrought-iron lattice tower in Paris, France.",
        id="eiffel",
        metadata={"topic": "travel"},
    ),
    Document(
        "Photosynthesis converts light energy into chemical energy in plants.",
        id="photo",
        metadata={"topic": "biology"},
    ),
    Document(
        "A binary search finds an item in a sorted array in logarithmic time.",
        id="bsearch",
        metadata={"topic": "cs"},
    ),
    Document(
        "Espresso is brewed by forcing hot water through finely-ground coffee.",
        id="coffee",
        metadata={"topic": "food"},
    ),
    Document(
        "The mitochondrion is the powerhouse of the cell, producing ATP.",
        id="mito",
        metadata={"topic": "biology"},
    ),
]


@pytest.mark.parametrize("kind", STORES)
def test_search_finds_the_relevant_document_and_filters(kind: str, tmp_path: Path, minilm_embedder) -> None:
    with open_sink(kind, tmp_path) as sink:
        report = ingest(CORPUS, embedder=minilm_embedder, sink=sink, progress=False)
        assert report.written == 5
        manifest = sink.read_manifest()
        assert manifest is not None and (manifest.dimensions, manifest.profile) == (
            384,
            minilm_embedder.profile.family,
        )

        hits = search(
            "how do plants turn sunlight into energy?", embedder=minilm_embedder, sink=sink, top_k=3
        )
        assert hits[0].doc_id == "photo"
        assert hits[0].score > hits[1].score >= hits[2].score
        assert hits[0].metadata == {"topic": "biology"} and hits[0].text == CORPUS[1].text

        hits = search(
            "what makes energy inside cells", embedder=minilm_embedder, sink=sink, filter={"topic": "biology"}
        )
        assert [h.doc_id for h in hits] == ["mito", "photo"]

        # The stored vector is the engine's own vector for the chunk.
        hit = search(CORPUS[3].text, embedder=minilm_embedder, sink=sink, top_k=1)[0]
        assert hit.doc_id == "coffee" and hit.score == pytest.approx(
            float(
                minilm_embedder.embed_documents([CORPUS[3].text])[0]
                @ minilm_embedder.embed_query(CORPUS[3].text)
            ),
            abs=1e-4,
        )


def test_searching_a_missing_collection_says_so(tmp_path: Path, minilm_embedder) -> None:
    with (
        open_sink("qdrant", tmp_path, collection="nothing") as sink,
        pytest.raises(CollectionNotFoundError, match="'nothing' does not exist"),
    ):
        search("q", embedder=minilm_embedder, sink=sink)


def test_long_documents_are_chunked_with_the_model_tokenizer(tmp_path: Path, minilm_embedder) -> None:
    text = " ".join(f"Sentence number {i} is about the history of printing presses." for i in range(80))
    with open_sink("qdrant", tmp_path) as sink:
        report = ingest(
            [Document(text, id="long")],
            embedder=minilm_embedder,
            sink=sink,
            chunk_overlap=16,
            splitter="tokens",  # fixed windows: their count follows from the token count
            progress=False,
        )
        tokens = len(minilm_embedder.tokenizer(text, add_special_tokens=False)["input_ids"])
        limit = minilm_embedder.max_input_tokens
        assert report.chunks == 1 + -(-(tokens - limit) // (limit - 16)) and report.chunks > 1
        hits = search("printing presses history", embedder=minilm_embedder, sink=sink, top_k=10)
        assert sorted(h.chunk_index for h in hits) == list(range(report.chunks))


def test_an_embedder_whose_engine_has_not_started_starts_it_only_to_embed(
    tmp_path: Path, minilm_embedder
) -> None:
    from vllm_embed.embedder import Embedder

    unstarted = Embedder._unstarted(minilm_embedder.config)
    assert unstarted._backend is None
    assert unstarted.describe() == minilm_embedder.describe()
    planned = (unstarted.dimension, unstarted.max_model_len, unstarted.max_input_tokens)
    assert planned == (
        minilm_embedder.dimension,
        minilm_embedder.max_model_len,
        minilm_embedder.max_input_tokens,
    )
    with open_sink("qdrant", tmp_path) as sink:
        ingest(CORPUS, embedder=minilm_embedder, sink=sink, progress=False)
        again = ingest(CORPUS, embedder=unstarted, sink=sink, progress=False)
        assert (again.embedded, again.skipped) == (0, len(CORPUS)) and unstarted._backend is None
        grown = [*CORPUS, Document("Rust prevents data races at compile time.", id="rust")]
        more = ingest(grown, embedder=unstarted, sink=sink, progress=False)  # the (shared) engine starts
        assert more.embedded == 1 and unstarted._backend is not None
        assert (
            search("memory-safe systems language", embedder=unstarted, sink=sink, top_k=1)[0].doc_id == "rust"
        )
    unstarted.close()
