"""A damaged collection manifest is reported as such (where it is, what is wrong, how to repair it), and
`write_manifest` repairs it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ingest_fixtures import STORES, FakeHashEmbedder, open_sink

from vllm_embed.errors import ManifestError, VllmEmbedError
from vllm_embed.ingest import ingest, search
from vllm_embed.sinks import Manifest, ManifestMismatchError, MilvusSink, QdrantSink

GOOD = Manifest.from_description(FakeHashEmbedder().describe()).model_dump()
DAMAGES: dict[str, tuple[Any, str]] = {
    "mistyped": ({**GOOD, "dimensions": "abc"}, "dimensions: Input should be a valid integer"),
    "missing-model": ({k: v for k, v in GOOD.items() if k != "model"}, "model: Field required"),
    "not-json": ("{not json", "Expecting property name"),
    "not-an-object": ("[1, 2]", "expected a JSON object, got list"),
}


def damage(sink: QdrantSink | MilvusSink, stored: Any) -> None:
    """Writes `stored` as the manifest with the store's own client, as another tool (or a bug) could."""
    if isinstance(sink, QdrantSink):
        sink.client.update_collection(sink.collection, metadata={"vllm_embed": stored})
    else:
        text = stored if isinstance(stored, str) else json.dumps(stored)
        sink.client.alter_collection_properties(sink.collection, properties={"vllm_embed.manifest": text})


@pytest.mark.parametrize("damaged", DAMAGES)
@pytest.mark.parametrize("kind", STORES)
def test_a_damaged_manifest_says_where_it_is_what_is_wrong_and_how_to_repair(
    kind: str, damaged: str, tmp_path: Path
) -> None:
    stored, problem = DAMAGES[damaged]
    fake = FakeHashEmbedder()
    with open_sink(kind, tmp_path) as sink:
        ingest(["one", "two"], embedder=fake, sink=sink, progress=False)
        damage(sink, stored)
    where = "Qdrant collection metadata key 'vllm_embed'" if kind == "qdrant" else "'vllm_embed.manifest'"
    with open_sink(kind, tmp_path) as sink:
        for attempt in (
            sink.read_manifest,
            lambda: search("q", embedder=fake, sink=sink),
            lambda: ingest(["three"], embedder=fake, sink=sink, progress=False),
        ):
            with pytest.raises(ManifestError) as failure:
                attempt()
            message = str(failure.value)
            assert isinstance(failure.value, VllmEmbedError)
            assert "manifest of collection 'docs' is damaged" in message
            assert where in message and problem in message
            assert ".write_manifest(Manifest.from_description(embedder.describe()" in message
        assert fake.calls == [["one", "two"]]

        # The repair the message names: the manifest is checked against the stored vectors first.
        with pytest.raises(ManifestMismatchError, match="holds 8-dimensional vectors, the manifest says 16"):
            sink.write_manifest(Manifest.from_description(FakeHashEmbedder(dimension=16).describe()))
        sink.write_manifest(Manifest.from_description(fake.describe()))
        assert sink.read_manifest() == Manifest.from_description(fake.describe())
        # A manifest written without chunking settings counts as fixed token windows (older versions).
        report = ingest(["one", "two", "three"], embedder=fake, sink=sink, progress=False, splitter="tokens")
        assert (report.skipped, report.embedded) == (2, 1)


@pytest.mark.parametrize("kind", STORES)
def test_write_manifest_needs_an_existing_collection(kind: str, tmp_path: Path) -> None:
    from vllm_embed.sinks import CollectionNotFoundError

    with open_sink(kind, tmp_path, collection="nothing") as sink, pytest.raises(CollectionNotFoundError):
        sink.write_manifest(Manifest.from_description(FakeHashEmbedder().describe()))


def test_manifest_from_description_ignores_other_keys_and_takes_the_layout() -> None:
    description = {**FakeHashEmbedder().describe(), "revision": None, "long_input": "error"}
    manifest = Manifest.from_description(description, layout="langchain")
    assert manifest == Manifest(
        model="fake-model",
        profile="fake",
        dimensions=8,
        normalized=True,
        pooling="mean",
        layout="langchain",
        vllm_embed_version="test",
    )
