"""A damaged collection manifest is reported as such (where it is, what is wrong, how to repair it).

Each store's side (the message names the store's place, `write_manifest` repairs it) is in tests/contract."""

from __future__ import annotations

from typing import Any

import pytest
from ingest_fixtures import FakeHashEmbedder

from vllm_embed.errors import ManifestError, VllmEmbedError
from vllm_embed.sinks import Manifest

GOOD = Manifest.from_description(FakeHashEmbedder().describe()).model_dump()
DAMAGES: dict[str, tuple[Any, str]] = {
    "mistyped": ({**GOOD, "dimensions": "abc"}, "dimensions: Input should be a valid integer"),
    "missing-model": ({k: v for k, v in GOOD.items() if k != "model"}, "model: Field required"),
    "not-json": ("{not json", "Expecting property name"),
    "not-an-object": ("[1, 2]", "expected a JSON object, got list"),
}


@pytest.mark.parametrize("damaged", DAMAGES)
def test_a_damaged_manifest_says_where_it_is_what_is_wrong_and_how_to_repair(damaged: str) -> None:
    stored, problem = DAMAGES[damaged]
    with pytest.raises(ManifestError) as failure:
        Manifest.from_stored(stored, collection="docs", location="here", repair="rewrite it")
    message = str(failure.value)
    assert isinstance(failure.value, VllmEmbedError)
    assert message.startswith("the vllm-embed manifest of collection 'docs' is damaged (here: ")
    assert problem in message and message.endswith("; rewrite it")


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
