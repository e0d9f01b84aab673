"""The ingest pipeline on real embedded stores (Qdrant local mode, Milvus Lite), with a Fake embedder.

The Fake embedder only stands in for vectors: ids, skipping, resumption, manifests and error handling are
pure pipeline logic. Search quality with the real engine is in test_ingest_search.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ingest_fixtures import STORE_LAYOUTS, STORES, FakeHashEmbedder, dump_store, open_sink
from transformers import AutoTokenizer

from vllm_embed.ingest import Document, ingest, point_id, search
from vllm_embed.sinks import ManifestMismatchError, SinkError


@pytest.fixture(scope="module")
def tokenizer(minilm_path: str):
    return AutoTokenizer.from_pretrained(minilm_path)


@pytest.fixture(params=STORES)
def sink(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator:
    with open_sink(request.param, tmp_path) as opened:
        yield opened


@pytest.fixture(params=STORE_LAYOUTS)
def layout_sink(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator:
    """A sink in each store and payload layout, for the tests whose logic reads or writes stored fields."""
    kind, layout = request.param
    with open_sink(kind, tmp_path, layout=layout) as opened:
        yield opened


def corpus(n: int = 40) -> list[Document]:
    return [
        Document(
            f"Document number {i} talks about topic {i % 7} in some detail.", id=f"doc-{i}", metadata={"i": i}
        )
        for i in range(n)
    ]


def test_ingest_stores_every_chunk_with_its_payload(layout_sink, tokenizer) -> None:
    fake = FakeHashEmbedder(tokenizer)
    docs = [*corpus(10), Document("word " * 70, id="long", metadata={"kind": "long"})]
    report = ingest(docs, embedder=fake, sink=layout_sink, batch_size=4, progress=False)

    assert (report.documents, report.chunks, report.embedded, report.written, report.skipped) == (
        11,
        13,
        13,
        13,
        0,
    )
    assert layout_sink.count() == 13
    stored = dump_store(layout_sink)
    payload, _ = stored[point_id("long", 2)]
    assert (
        payload["doc_id"] == "long"
        and payload["chunk_index"] == 2
        and payload["metadata"] == {"kind": "long"}
    )
    hit = search(docs[3].text, embedder=fake, sink=layout_sink, top_k=1)[0]
    assert (hit.id, hit.doc_id, hit.chunk_index, hit.text, hit.metadata) == (
        point_id("doc-3", 0),
        "doc-3",
        0,
        docs[3].text,
        {"i": 3},
    )
    assert hit.score == pytest.approx(1.0, abs=1e-5)


def test_rerun_embeds_nothing_and_leaves_the_store_unchanged(layout_sink, tokenizer) -> None:
    ingest(corpus(), embedder=FakeHashEmbedder(tokenizer), sink=layout_sink, batch_size=8, progress=False)
    before = dump_store(layout_sink)
    fake = FakeHashEmbedder(tokenizer)
    report = ingest(corpus(), embedder=fake, sink=layout_sink, batch_size=8, progress=False)

    assert fake.embedded == []
    assert (report.chunks, report.skipped, report.embedded, report.written) == (40, 40, 0, 0)
    after = dump_store(layout_sink)
    assert sorted(after) == sorted(before)


def test_a_grown_corpus_embeds_only_the_new_documents(layout_sink, tokenizer) -> None:
    ingest(corpus(25), embedder=FakeHashEmbedder(tokenizer), sink=layout_sink, batch_size=8, progress=False)
    fake = FakeHashEmbedder(tokenizer)
    report = ingest(corpus(40), embedder=fake, sink=layout_sink, batch_size=8, progress=False)

    assert sorted(fake.embedded) == sorted(d.text for d in corpus(40)[25:])
    assert (report.embedded, report.skipped) == (15, 25)
    assert layout_sink.count() == 40


def test_a_changed_document_is_reembedded_and_its_stale_chunks_removed(layout_sink, tokenizer) -> None:
    ingest(
        [Document("alpha " * 80, id="d")],
        embedder=FakeHashEmbedder(tokenizer),
        sink=layout_sink,
        progress=False,
    )
    assert layout_sink.count() == 3
    fake = FakeHashEmbedder(tokenizer)
    report = ingest([Document("beta gamma", id="d")], embedder=fake, sink=layout_sink, progress=False)

    assert fake.embedded == ["beta gamma"]
    assert report.deleted_from == 1
    assert [p["text"] for p, _ in dump_store(layout_sink).values()] == ["beta gamma"]


def test_documents_without_id_get_a_content_hash_and_strings_and_dicts_are_accepted(
    layout_sink, tokenizer
) -> None:
    items = ["plain string document", {"text": "dict document", "lang": "en"}, {"text": "with id", "id": 7}]
    ingest(items, embedder=FakeHashEmbedder(tokenizer), sink=layout_sink, progress=False)
    payloads = {p["text"]: p for p, _ in dump_store(layout_sink).values()}

    assert len(payloads["plain string document"]["doc_id"]) == 32
    assert payloads["dict document"]["metadata"] == {"lang": "en"}
    assert payloads["with id"]["doc_id"] == "7"


def test_a_different_model_or_size_is_refused_before_anything_is_written(sink, tokenizer) -> None:
    ingest(corpus(5), embedder=FakeHashEmbedder(tokenizer), sink=sink, progress=False)
    other_model = FakeHashEmbedder(tokenizer, model="other-model")
    with pytest.raises(
        ManifestMismatchError, match="model: collection has 'fake-model', this run has 'other-model'"
    ):
        ingest(corpus(10), embedder=other_model, sink=sink, progress=False)
    other_size = FakeHashEmbedder(tokenizer, dimension=16)
    with pytest.raises(ManifestMismatchError, match="dimensions: collection has 8, this run has 16"):
        ingest(corpus(10), embedder=other_size, sink=sink, progress=False)
    with pytest.raises(ManifestMismatchError, match="dimensions"):
        search("x", embedder=other_size, sink=sink)

    assert other_model.calls == [] and other_size.calls == []
    assert sink.count() == 5


def test_reading_is_streamed_not_loaded_up_front(sink, tokenizer) -> None:
    pulled = 0
    pulled_at_first_write: list[int] = []
    upsert = sink.upsert

    def documents():
        nonlocal pulled
        for doc in corpus(2000):
            pulled += 1
            yield doc

    def recording_upsert(chunks, vectors):
        pulled_at_first_write.append(pulled)
        upsert(chunks, vectors)

    sink.upsert = recording_upsert
    report = ingest(
        documents(), embedder=FakeHashEmbedder(tokenizer), sink=sink, batch_size=16, progress=False
    )

    assert report.documents == 2000
    # Read-ahead is bounded by the queues (a few batches and one tokenizer group), not the corpus.
    assert pulled_at_first_write[0] <= 16 * 8 + 64


class FailingUpserts:
    """Wraps a real client; upserts after the first `ok` ones raise the given error."""

    def __init__(self, client, ok: int, error: Exception) -> None:
        self._client, self._ok, self._error = client, ok, error
        self.upserts = 0

    def __getattr__(self, name):
        return getattr(self._client, name)

    def upsert(self, *args, **kwargs):
        self.upserts += 1
        if self.upserts > self._ok:
            raise self._error
        return self._client.upsert(*args, **kwargs)


@pytest.mark.parametrize("kind", STORES)
def test_a_permanent_store_error_stops_the_run_and_a_rerun_completes_it(
    kind: str, tmp_path: Path, tokenizer
) -> None:
    with open_sink(kind, tmp_path) as sink:
        sink.client = FailingUpserts(sink.client, ok=2, error=RuntimeError("disk full"))
        with pytest.raises(SinkError, match="upsert failed: disk full"):
            ingest(corpus(), embedder=FakeHashEmbedder(tokenizer), sink=sink, batch_size=8, progress=False)
        sink.client = sink.client._client
        assert sink.count() == 16

        fake = FakeHashEmbedder(tokenizer)
        report = ingest(corpus(), embedder=fake, sink=sink, batch_size=8, progress=False)
        assert (report.skipped, report.embedded) == (16, 24)
        assert sink.count() == 40


@pytest.mark.parametrize("kind", STORES)
def test_transient_store_errors_are_retried(kind: str, tmp_path: Path, tokenizer) -> None:
    class FlakyUpserts(FailingUpserts):
        def upsert(self, *args, **kwargs):
            self.upserts += 1
            if self.upserts in (2, 3):
                raise ConnectionError("connection reset by peer")
            return self._client.upsert(*args, **kwargs)

    with open_sink(kind, tmp_path, retry_wait=0.0) as sink:
        flaky = FlakyUpserts(sink.client, ok=0, error=ConnectionError())
        sink.client = flaky
        report = ingest(
            corpus(), embedder=FakeHashEmbedder(tokenizer), sink=sink, batch_size=8, progress=False
        )

        assert report.written == 40 and flaky.upserts == 5 + 2
        sink.client = flaky._client
        assert sink.count() == 40


def test_embedder_errors_propagate_after_finishing_queued_writes(sink, tokenizer) -> None:
    class BrokenAfterTwoBatches(FakeHashEmbedder):
        def embed_documents(self, texts):
            if len(self.calls) == 2:
                raise RuntimeError("engine died")
            return super().embed_documents(texts)

    with pytest.raises(RuntimeError, match="engine died"):
        ingest(corpus(), embedder=BrokenAfterTwoBatches(tokenizer), sink=sink, batch_size=8, progress=False)
    assert sink.count() == 16


def test_invalid_arguments_are_rejected(sink, tokenizer) -> None:
    fake = FakeHashEmbedder(tokenizer)
    with pytest.raises(ValueError, match="chunk_overlap=8 must be"):
        ingest(corpus(), embedder=fake, sink=sink, chunk_tokens=8, chunk_overlap=8)
    with pytest.raises(ValueError, match="batch_size=0"):
        ingest(corpus(), embedder=fake, sink=sink, batch_size=0)
    with pytest.raises(TypeError, match="cannot ingest a int"):
        ingest([1], embedder=fake, sink=sink, progress=False)


def test_progress_bar_reports_documents_and_chunks(
    sink, tokenizer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # one line, whatever the rates' widths
    ingest(corpus(), embedder=FakeHashEmbedder(tokenizer), sink=sink, batch_size=8, progress=True)
    err = " ".join(capsys.readouterr().err.split())
    assert "40/40" in err and "docs/s" in err and "40 chunks" in err
    ingest(corpus(), embedder=FakeHashEmbedder(tokenizer), sink=sink, progress=False)
    assert capsys.readouterr().err == ""
