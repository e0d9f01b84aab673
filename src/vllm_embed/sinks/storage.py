"""Storage settings, declared once for sinks and CLI flags: creation, search, and payload-index fields."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from vllm_embed._utils import one_line
from vllm_embed.errors import StorageSettingsError as StorageSettingsError
from vllm_embed.errors import VllmEmbedError
from vllm_embed.sinks.layouts import DOC_ID
from vllm_embed.sinks.milvus_index import DEFAULT_INDEX, check_index

SettingsT = TypeVar("SettingsT", bound=BaseModel)

Quantization = Literal["int8", "binary"]
"""Vector quantization of a Qdrant collection: `int8` (scalar, 4× smaller) or `binary` (32× smaller)."""

QUANTIZATIONS: tuple[str, ...] = get_args(Quantization)

BINARY_OVERSAMPLING = 2.0
"""Oversampling of a rescored search in a binary-quantized collection when none is given."""

IndexFieldType = Literal["keyword", "integer", "float", "bool"]
"""Type of a payload index: what the metadata values of the field are."""

INDEX_FIELD_TYPES: tuple[str, ...] = get_args(IndexFieldType)


@dataclass(frozen=True)
class IndexField:
    """A metadata field to index for filtering, and the type of its values."""

    name: str
    type: IndexFieldType = "keyword"

    @classmethod
    def parse(cls, spec: str | IndexField) -> IndexField:
        """Reads `NAME` (a keyword field) or `NAME:TYPE` (`ValueError` naming the accepted forms)."""
        if isinstance(spec, IndexField):
            return spec
        name, _sep, kind = spec.rpartition(":") if ":" in spec else (spec, "", "keyword")
        name, kind = name.strip(), kind.strip() or "keyword"
        if not name or kind not in INDEX_FIELD_TYPES:
            raise ValueError(
                f"index field {spec!r} must be NAME or NAME:TYPE with TYPE one of "
                f"{', '.join(INDEX_FIELD_TYPES)} (e.g. 'lang' or 'year:integer')"
            )
        return cls(name, kind)  # type: ignore[arg-type]

    def to_spec(self) -> str:
        """The `NAME:TYPE` form `parse` reads."""
        return f"{self.name}:{self.type}"


def index_fields(specs: Iterable[str | IndexField]) -> tuple[IndexField, ...]:
    """Parses metadata fields to index, once each, less `doc_id` (`ValueError`: malformed, two types)."""
    fields: dict[str, IndexField] = {}
    for spec in specs:
        field = IndexField.parse(spec)
        if field.name == DOC_ID:
            continue
        if field.name in fields and fields[field.name] != field:
            raise ValueError(f"index field {field.name!r} is given twice with different types")
        fields[field.name] = field
    return tuple(fields.values())


def validated(
    model: type[SettingsT],
    owner: str,
    /,
    *,
    error: type[VllmEmbedError] = StorageSettingsError,
    what: str = "storage settings",
    **values: Any,
) -> SettingsT:
    """Builds the settings `model` from `values`; `error` in one line naming `owner`'s invalid ones."""
    try:
        return model(**values)
    except ValidationError as exc:
        raise error(f"{owner}: invalid {what} ({one_line(exc)})") from None


class QdrantCollectionSettings(BaseModel):
    """How a Qdrant collection (server or `QdrantEdgeSink`) keeps its dense vectors; set at creation."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    quantization: Quantization | None = None
    """Quantized copy of the vectors searched first: int8 (scalar) or binary; `None` keeps float32 only."""
    on_disk: bool = False
    """Keep the original float32 vectors on disk (memory-mapped); the quantized copy stays in RAM."""
    hnsw_m: int | None = Field(default=None, ge=0)
    """Edges per node of the HNSW graph (Qdrant's default 16; 0 builds no graph)."""
    hnsw_ef_construct: int | None = Field(default=None, ge=4)
    """Candidates kept while building the HNSW graph (Qdrant's default 100)."""
    shard_number: int | None = Field(default=None, ge=1)
    """Shards of the collection (a Qdrant server's cluster)."""
    replication_factor: int | None = Field(default=None, ge=1)
    """Copies of each shard (a Qdrant server's cluster)."""


class QdrantSearchSettings(BaseModel):
    """How a Qdrant sink searches; applies to every search through the sink."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    ef: int | None = Field(default=None, ge=1)
    """Candidates the HNSW search keeps (`hnsw_ef`); more is slower and finds more true neighbours."""
    rescore: bool = True
    """In a quantized collection, re-rank the candidates with the original vectors."""
    oversampling: float | None = Field(default=None, ge=1.0)
    """In a quantized collection, fetch this many times `top_k` candidates before rescoring
    (2.0 for binary quantization when not given)."""

    def oversampling_for(self, quantization: str | None) -> float | None:
        """The oversampling to send for a collection with `quantization`."""
        if self.oversampling is not None:
            return self.oversampling
        return BINARY_OVERSAMPLING if quantization == "binary" else None


class MilvusIndexSettings(BaseModel):
    """The dense vector index of a Milvus collection (set at creation) and its search parameters."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    index: str = DEFAULT_INDEX
    """Index type: AUTOINDEX, FLAT, HNSW, HNSW_SQ, IVF_FLAT, IVF_SQ8 (these Milvus Lite builds too), or on a
    Milvus server also HNSW_PQ, HNSW_PRQ, IVF_PQ, IVF_RABITQ, SCANN, DISKANN (case-insensitive)."""
    index_params: dict[str, Any] = Field(default_factory=dict)
    """Build parameters of the index, e.g. `{"M": 16, "efConstruction": 200}` for HNSW, `{"nlist": 128}`
    for the IVF indexes; left out, the store's defaults apply."""
    search_params: dict[str, Any] = Field(default_factory=dict)
    """Search parameters, e.g. `{"ef": 64}` for HNSW or `{"nprobe": 16}` for the IVF indexes; when none are
    given, those recorded when the collection was created apply."""

    @field_validator("index", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _known(self) -> MilvusIndexSettings:
        check_index(self.index, self.index_params, self.search_params)
        return self


def storage_mismatches(
    stored: Mapping[str, Any] | None, requested: Mapping[str, Any], defaults: Mapping[str, Any]
) -> list[str]:
    """Describes each requested creation setting that differs from the collection's (defaults follow it)."""
    stored = stored or {}
    return [
        f"{name}: collection has {stored.get(name, defaults.get(name))!r}, this run asks for {value!r}"
        for name, value in requested.items()
        if value != defaults.get(name) and value != stored.get(name, defaults.get(name))
    ]
