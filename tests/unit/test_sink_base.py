"""What all sinks share: error classes, the transient-error check, the base class, `Hit.to_dict`."""

from __future__ import annotations

import grpc

from vllm_embed.errors import VllmEmbedError
from vllm_embed.sinks import (
    BaseSink,
    CollectionNotFoundError,
    Hit,
    HybridSink,
    ManifestMismatchError,
    MilvusSink,
    QdrantSink,
    Sink,
    SinkError,
    VerifiableSink,
)
from vllm_embed.sinks.base import is_transient_grpc_error


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code


def test_sink_errors_are_vllm_embed_errors_and_keep_their_builtin_base() -> None:
    for error, builtin in [
        (SinkError, RuntimeError),
        (ManifestMismatchError, ValueError),
        (CollectionNotFoundError, LookupError),
    ]:
        assert issubclass(error, VllmEmbedError) and issubclass(error, builtin)


def test_every_sink_is_a_base_sink_and_a_base_sink_is_a_sink() -> None:
    assert issubclass(QdrantSink, BaseSink) and issubclass(MilvusSink, BaseSink)
    assert {Sink, HybridSink, VerifiableSink} <= set(BaseSink.__mro__)


def test_transient_grpc_errors_are_recognised_by_code() -> None:
    codes = {"UNAVAILABLE", "DEADLINE_EXCEEDED"}
    assert is_transient_grpc_error(FakeRpcError(grpc.StatusCode.UNAVAILABLE), codes)
    assert not is_transient_grpc_error(FakeRpcError(grpc.StatusCode.INVALID_ARGUMENT), codes)
    assert not is_transient_grpc_error(ConnectionError(), codes)
    with QdrantSink("d", location=":memory:") as sink:
        assert sink._is_transient(FakeRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED))
        assert not sink._is_transient(FakeRpcError(grpc.StatusCode.NOT_FOUND))


def test_hit_to_dict() -> None:
    hit = Hit(id="p", doc_id="d", chunk_index=2, score=0.5, text="t", metadata={"a": [1]})
    assert hit.to_dict() == {
        "id": "p", "doc_id": "d", "chunk_index": 2, "score": 0.5, "text": "t", "metadata": {"a": [1]},
        "found_by": [],
    }  # fmt: skip
    found = Hit(
        id="p", doc_id="d", chunk_index=2, score=0.5, text="t", metadata={}, found_by=("dense", "sparse")
    )
    assert found.to_dict()["found_by"] == ["dense", "sparse"]
