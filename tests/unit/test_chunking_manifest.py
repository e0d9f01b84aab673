"""The chunking recorded in a collection's manifest: refused when it changes, replaced with `rechunk`,
older manifests without it, and the CLI's check before the engine starts (with a Fake embedder)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import FakeEngine, no_engine, run
from ingest_fixtures import FakeHashEmbedder, open_sink

from vllm_embed import cli
from vllm_embed.ingest import Document, ingest, point_id
from vllm_embed.sinks import QdrantSink
from vllm_embed.sinks.base import Manifest, ManifestMismatchError

# Without a tokenizer chunks are counted in characters (4 a token): 16 tokens hold 64 characters.
TEXT = "\n\n".join(f"Paragraph {i} is about tea, rivers and the history of printing." for i in range(12))


def stored_chunks(sink, doc_id: str) -> list[str]:
    texts = []
    index = 0
    while True:
        found = sink.fetch_texts([point_id(doc_id, index)])
        if not found:
            return texts
        texts.extend(found.values())
        index += 1


@pytest.mark.parametrize("kind", ["qdrant", "milvus"])
def test_other_chunking_is_refused_unless_rechunk_replaces_the_chunks(kind: str, tmp_path: Path) -> None:
    docs = [Document(TEXT, id="long"), Document("short text", id="short")]
    fake = FakeHashEmbedder(max_input_tokens=512)
    with open_sink(kind, tmp_path) as sink:
        first = ingest(docs, embedder=fake, sink=sink, chunk_tokens=32, progress=False)
        manifest = sink.read_manifest()
        assert manifest is not None
        assert (manifest.splitter, manifest.chunk_tokens, manifest.chunk_overlap) == ("text", 32, 0)
        text_chunks = stored_chunks(sink, "long")
        assert len(text_chunks) == first.chunks - 1 > 1
        assert all(chunk.startswith("Paragraph") for chunk in text_chunks)  # cut between paragraphs

        for change, named in [
            ({"splitter": "tokens"}, "splitter: collection has 'text', this run has 'tokens'"),
            ({"chunk_tokens": 16}, "chunk_tokens: collection has 32, this run has 16"),
            ({"chunk_overlap": 4}, "chunk_overlap: collection has 0, this run has 4"),
        ]:
            settings = {"chunk_tokens": 32, **change}
            with pytest.raises(ManifestMismatchError, match="was chunked differently") as refused:
                ingest(docs, embedder=fake, sink=sink, progress=False, **settings)  # type: ignore[arg-type]
            assert named in str(refused.value) and "--rechunk" in str(refused.value)
        assert len(fake.calls) == 1  # nothing embedded by the refused runs

        rechunked = ingest(
            docs, embedder=fake, sink=sink, chunk_tokens=16, splitter="tokens", rechunk=True, progress=False
        )
        token_chunks = stored_chunks(sink, "long")
        assert len(token_chunks) == rechunked.chunks - 1 > len(text_chunks)
        assert rechunked.skipped == 1  # the short document's one chunk is unchanged
        manifest = sink.read_manifest()
        assert manifest is not None and (manifest.splitter, manifest.chunk_tokens) == ("tokens", 16)
        assert sink.count() == rechunked.chunks

        # Back to fewer chunks: the extra ones are deleted; a re-run is idempotent.
        ingest(docs, embedder=fake, sink=sink, chunk_tokens=32, rechunk=True, progress=False)
        assert stored_chunks(sink, "long") == text_chunks and sink.count() == first.chunks
        again = FakeHashEmbedder(max_input_tokens=512)
        report = ingest(docs, embedder=again, sink=sink, chunk_tokens=32, progress=False)
        assert (report.skipped, again.calls) == (first.chunks, [])


def test_a_manifest_without_chunking_counts_as_token_windows(tmp_path: Path) -> None:
    fake = FakeHashEmbedder(max_input_tokens=512)
    with open_sink("qdrant", tmp_path) as sink:
        ingest(["one", "two"], embedder=fake, sink=sink, splitter="tokens", progress=False)
        sink.write_manifest(Manifest.from_description(fake.describe()))  # as older versions wrote it
        with pytest.raises(ManifestMismatchError, match=r"collection has 'tokens'.*this run has 'text'"):
            ingest(["one", "two"], embedder=fake, sink=sink, progress=False)
        report = ingest(["one", "two"], embedder=fake, sink=sink, splitter="tokens", progress=False)
        assert report.skipped == 2
        manifest = sink.read_manifest()
        assert manifest is not None and (manifest.splitter, manifest.chunk_tokens) == ("tokens", 512)


def by_sentence(text: str) -> list[str]:
    return [part.strip() + "." for part in text.split(".") if part.strip()]


def test_a_callable_splitter_is_recorded_by_its_qualified_name(tmp_path: Path) -> None:
    fake = FakeHashEmbedder(max_input_tokens=512)
    with open_sink("qdrant", tmp_path) as sink:
        report = ingest(["One. Two. Three."], embedder=fake, sink=sink, splitter=by_sentence, progress=False)
        assert report.chunks == 3
        manifest = sink.read_manifest()
        assert manifest is not None and manifest.splitter == f"{__name__}.by_sentence"


def test_cli_refuses_other_chunking_before_the_engine_starts(tmp_path: Path, monkeypatch) -> None:
    corpus = tmp_path / "notes.md"
    corpus.write_text("# Tea\n\nGreen tea is made from unoxidised leaves.\n")
    store = ["-c", "docs", "--qdrant", str(tmp_path / "q"), "-m", "fake-model"]
    monkeypatch.setattr(cli, "make_embedder", FakeEngine())
    code, _, err = run("ingest", str(corpus), *store, "--no-progress")
    assert code == 0, err

    monkeypatch.setattr(cli, "make_embedder", no_engine)
    code, _, err = run("ingest", str(corpus), *store, "--splitter", "tokens", "--no-progress")
    assert code != 0 and "chunked differently" in err and "--rechunk" in err
    code, _, err = run("ingest", str(corpus), *store, "--chunk-tokens", "16", "--no-progress")
    assert code != 0 and "chunk_tokens: collection has 32, this run has 16" in err

    monkeypatch.setattr(cli, "make_embedder", FakeEngine())
    code, _, err = run("ingest", str(corpus), *store, "--splitter", "tokens", "--rechunk", "--no-progress")
    assert code == 0, err
    with QdrantSink("docs", path=str(tmp_path / "q")) as sink:
        manifest = sink.read_manifest()
        assert manifest is not None and manifest.splitter == "tokens"
