"""The collection manifest (how a collection was embedded), its state, and what a store reports about it."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from vllm_embed._utils import one_line
from vllm_embed.errors import ManifestError, VllmEmbedError


class SinkError(VllmEmbedError, RuntimeError):
    """A store operation failed for good (a permanent error, or a transient one that outlived its retries)."""


class ManifestMismatchError(VllmEmbedError, ValueError):
    """The collection was embedded differently (another model, size or layout) from this run."""


class CollectionNotFoundError(VllmEmbedError, LookupError):
    """The collection does not exist (or was not created by vllm-embed)."""


@dataclass(frozen=True)
class CollectionInfo:
    """What a store reports about one collection (`vllm-embed collections info`), read back from the store."""

    name: str
    """Collection name."""
    store: str
    """The sink that read it, e.g. `QdrantEdgeSink(path='./qdrant')`."""
    manifest: Manifest | None
    """The vllm-embed manifest, or `None` for a collection vllm-embed did not create (adoptable)."""
    points: int
    """Number of points (rows)."""
    dimensions: int | None
    """Size of the dense vector (`None` when the store has no dense vector under the layout's name)."""
    distance: str | None
    """Similarity of the dense vector, lower case (`cosine`, `dot`, `euclid`, `l2`, `ip`, …)."""
    storage: dict[str, Any] = field(default_factory=dict)
    """Vector storage as the store reports it: quantization, HNSW settings, on-disk (Qdrant), index type
    and parameters (Milvus)."""
    payload_indexes: dict[str, str] = field(default_factory=dict)
    """Indexed payload fields and their index type, as the store reports them."""
    disk_bytes: int | None = None
    """Size on disk when the store reports it (local directories and files)."""

    def to_dict(self) -> dict[str, Any]:
        """The info as JSON-ready data."""
        data = dataclasses.asdict(self)
        data["manifest"] = None if self.manifest is None else self.manifest.model_dump()
        return data


class Manifest(BaseModel):
    """How a collection was embedded, stored with the collection itself."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    model: str
    """Model id or path the vectors come from."""
    profile: str | None = None
    """Model family (`ModelProfile.family`)."""
    dimensions: int
    """Vector size."""
    normalized: bool = True
    """Whether vectors are L2-normalised."""
    pooling: str | None = None
    """Pooling of the model (`mean`, `last`, `cls`)."""
    # -- chunking (vllm_embed.ingest.splitters); `None` in collections made before it was recorded --
    splitter: str | None = None
    """How documents were split: `text`, `markdown`, `tokens`, or a callable's qualified name."""
    chunk_tokens: int | None = None
    """Longest chunk in tokens of the model's input (document prompt and special tokens included)."""
    chunk_overlap: int | None = None
    """Tokens shared by consecutive chunks."""

    _CHUNKING: ClassVar[tuple[str, ...]] = ("splitter", "chunk_tokens", "chunk_overlap")

    def chunking_mismatches(self, other: Manifest) -> list[str]:
        """Describes each chunking setting that differs from `other` (a manifest without any: `tokens`)."""
        if self.splitter is None:
            splitter = other.splitter or "tokens"
            if splitter == "tokens":
                return []
            return [
                "splitter: collection has 'tokens' (fixed token windows: its manifest, from an older "
                f"version or written without chunking settings, records none), this run has {splitter!r}"
            ]
        return [
            f"{name}: collection has {getattr(self, name)!r}, this run has {getattr(other, name)!r}"
            for name in self._CHUNKING
            if getattr(other, name) is not None and getattr(self, name) != getattr(other, name)
        ]

    # -- end of chunking --
    layout: str = "vllm-embed"
    """Payload layout (see `Layout`)."""
    distance: str = "cosine"
    """Similarity metric of the collection."""
    vllm_embed_version: str = ""
    """vllm-embed version that created the collection."""
    sparse: str | None = None
    """Sparse representation stored beside the dense vector: `"bm25"` (a hybrid collection), `"learned"`
    (a `SparseEmbedder`'s vectors, see `sparse_model`), or `None`."""
    sparse_model: dict[str, Any] | None = None
    """The `SparseEmbedder.describe()` of a learned sparse collection (model, architecture, `max_terms`)."""
    sparse_vector: str | None = None
    """Name of the sparse vector (Qdrant) or sparse field (Milvus) of a hybrid collection."""
    sparse_analyzer: dict[str, Any] | None = None
    """How the sparse vectors are made: the encoder package, version and settings (Qdrant, computed
    client-side), or the text field's analyzer parameters (Milvus, computed by the server)."""
    multivector: dict[str, Any] | None = None
    """The `MultiVectorEmbedder.describe()` of a collection with per-token vectors (with `dimensions`), or
    `None`."""
    multivector_vector: str | None = None
    """Name of the multivector (Qdrant) of a collection with per-token vectors."""
    storage: dict[str, Any] | None = None
    """Creation settings of the collection (`vllm_embed.sinks.storage`): quantization, HNSW and on-disk
    (Qdrant) or index type and parameters (Milvus), and `index_fields` (the payload-indexed metadata fields
    as `NAME:TYPE`); `None` in collections made before they were recorded (the store's defaults)."""
    adopted: bool = False
    """Whether vllm-embed adopted a collection someone else created (`adopt=True`, `--adopt`)."""

    _COMPARED: ClassVar[tuple[str, ...]] = ("model", "dimensions", "normalized", "layout", "distance")

    @classmethod
    def from_description(cls, description: Mapping[str, Any], layout: str = "vllm-embed") -> Manifest:
        """Builds the manifest of an embedder from its `describe()` output (other keys are ignored)."""
        return cls.model_validate({**description, "layout": layout})

    @classmethod
    def from_stored(cls, stored: object, *, collection: str, location: str, repair: str) -> Manifest:
        """Reads a manifest as a store kept it (a dict, or its JSON text); the rest is for the message.

        Raises:
            ManifestError: Saying the manifest is damaged, what is wrong and how to repair it.
        """
        try:
            fields = json.loads(stored) if isinstance(stored, str | bytes) else stored
            if not isinstance(fields, dict):
                raise ValueError(f"expected a JSON object, got {type(fields).__name__}")
            return cls.model_validate(fields)
        except (ValueError, ValidationError) as exc:
            problem = one_line(exc)
        damaged = f"the vllm-embed manifest of collection {collection!r} is damaged"
        raise ManifestError(f"{damaged} ({location}: {problem}); {repair}")

    def mismatches(self, other: Manifest) -> list[str]:
        """Returns a description of each setting that differs from `other` (this one is the stored one).

        A learned sparse or multi-vector model is compared when both name one (`BaseSink.check_vector_kinds`
        refuses a run that brings or leaves out one; a search may leave the late-interaction stage out).
        """
        found = [
            f"{name}: collection has {getattr(self, name)!r}, this run has {getattr(other, name)!r}"
            for name in self._COMPARED
            if getattr(self, name) != getattr(other, name)
        ]
        learned = self.sparse == other.sparse == "learned"  # one side only: `check_vector_kinds` says why
        if learned and model_of(self.sparse_model) != model_of(other.sparse_model):
            found.append(
                f"sparse model: collection has {self.sparse_label()}, this run has {other.sparse_label()}"
            )
        both = self.multivector is not None and other.multivector is not None
        if both and model_of(self.multivector) != model_of(other.multivector):
            mine, theirs = model_of(self.multivector), model_of(other.multivector)
            found.append(f"multivector model: collection has {mine!r}, this run has {theirs!r}")
        return found

    def sparse_label(self) -> str:
        """The sparse half in words: `'BM25'`, the learned model's name, or `'none'`."""
        if self.sparse == "learned":
            return repr(model_of(self.sparse_model))
        return "BM25" if self.sparse == "bm25" else "none"

    def require_compatible(self, other: Manifest, collection: str) -> None:
        """Refuses (`ManifestMismatchError`) a run whose embedding settings differ from the collection's."""
        differences = self.mismatches(other)
        if differences:
            raise ManifestMismatchError(
                f"collection {collection!r} was embedded differently ({'; '.join(differences)}): "
                "use the collection's models and dimensions, or another collection"
            )


def model_of(description: Mapping[str, Any] | None) -> str | None:
    """The model (`model@revision` with a revision) an embedder description names (`None`: no description)."""
    if description is None:
        return None
    model, revision = str(description.get("model")), description.get("revision")
    return f"{model}@{revision}" if revision else model


@dataclass(frozen=True)
class CollectionState:
    """What a store holds under a collection name: `missing`, `unmanaged` (adoptable) or `managed`."""

    kind: Literal["missing", "unmanaged", "managed"]
    manifest: Manifest | None = None

    @property
    def missing(self) -> bool:
        """Whether the collection does not exist."""
        return self.kind == "missing"

    @property
    def unmanaged(self) -> bool:
        """Whether the collection exists without a vllm-embed manifest."""
        return self.kind == "unmanaged"


MISSING = CollectionState("missing")
UNMANAGED = CollectionState("unmanaged")
