"""Which dense index types and parameters a Milvus store builds, checked before anything is written.

Milvus Lite builds fewer types than a server and silently searches by brute force on any other; both ignore
unknown parameters without a word. Only given parameters are sent, except `m` of the PQ types (a server
requires it, dividing the vector size): `dimensions / 4` (else `/ 2`, else `dimensions`) when missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vllm_embed.errors import StorageSettingsError

DEFAULT_INDEX = "AUTOINDEX"
SCALAR_INDEX = "INVERTED"
"""Scalar index type of `doc_id` (and of metadata fields on a Milvus server): the one Milvus Lite builds."""

_HNSW_BUILD = frozenset({"M", "efConstruction"})
_REFINE_BUILD = frozenset({"refine", "refine_type"})
_HNSW_SEARCH = frozenset({"ef"})
_REFINE_SEARCH = frozenset({"ef", "refine_k"})
_IVF_SEARCH = frozenset({"nprobe"})

LITE_INDEXES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "AUTOINDEX": (frozenset(), _HNSW_SEARCH),
    "FLAT": (frozenset(), frozenset()),
    "HNSW": (_HNSW_BUILD, _HNSW_SEARCH),
    "HNSW_SQ": (_HNSW_BUILD, _HNSW_SEARCH),
    "IVF_FLAT": (frozenset({"nlist"}), _IVF_SEARCH),
    "IVF_SQ8": (frozenset({"nlist"}), _IVF_SEARCH),
}
"""Index types Milvus Lite 3.x builds (with faiss-cpu, its dependency): (build params, search params)."""

SERVER_INDEXES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "AUTOINDEX": (frozenset(), frozenset({"level"})),
    "FLAT": (frozenset(), frozenset()),
    "HNSW": (_HNSW_BUILD, _HNSW_SEARCH),
    "HNSW_SQ": (_HNSW_BUILD | _REFINE_BUILD | {"sq_type"}, _REFINE_SEARCH),
    "HNSW_PQ": (_HNSW_BUILD | _REFINE_BUILD | {"m", "nbits"}, _REFINE_SEARCH),
    "HNSW_PRQ": (_HNSW_BUILD | _REFINE_BUILD | {"m", "nbits", "nrq"}, _REFINE_SEARCH),
    "IVF_FLAT": (frozenset({"nlist"}), _IVF_SEARCH),
    "IVF_SQ8": (frozenset({"nlist"}), _IVF_SEARCH),
    "IVF_PQ": (frozenset({"nlist", "m", "nbits"}), _IVF_SEARCH),
    "IVF_RABITQ": (frozenset({"nlist"}) | _REFINE_BUILD, frozenset({"nprobe", "rbq_query_bits", "refine_k"})),
    "SCANN": (frozenset({"nlist", "with_raw_data"}), frozenset({"nprobe", "reorder_k"})),
    "DISKANN": (frozenset(), frozenset({"search_list"})),
}
"""CPU index types of a Milvus server (2.5/2.6) this sink knows: (build params, search params)."""

INDEX_TYPES: tuple[str, ...] = tuple(SERVER_INDEXES)
"""Every dense index type `MilvusSink(index=...)` takes (Milvus Lite builds `LITE_INDEXES` only)."""

_PQ_TYPES = frozenset({"IVF_PQ", "HNSW_PQ", "HNSW_PRQ"})
_INT_RANGES: dict[str, tuple[int, int]] = {
    **dict.fromkeys(("efConstruction", "ef", "refine_k", "reorder_k", "search_list"), (1, 2**31 - 1)),
    **dict.fromkeys(("nlist", "m", "nprobe"), (1, 65536)),
    **{"M": (2, 2048), "nbits": (1, 24), "nrq": (1, 16), "level": (1, 10), "rbq_query_bits": (0, 8)},
}


class MilvusIndexError(StorageSettingsError):
    """A Milvus index type or parameter this store does not build, or an index field it cannot index."""


def store_kind(lite: bool | None) -> str:
    """How the messages name a store (`None`: any)."""
    return {True: "Milvus Lite", False: "a Milvus server", None: "Milvus"}[lite]


def check_index(index: str, index_params: Mapping[str, Any], search_params: Mapping[str, Any]) -> str:
    """Checks an index type and its parameters against every type a server builds; returns it upper case.

    Raises:
        ValueError: For an unknown type (listing the types) or parameter (listing the type's parameters).
    """
    kind = index.strip().upper()
    if kind not in SERVER_INDEXES:
        raise ValueError(
            f"unknown Milvus index type {index!r}: use one of {', '.join(INDEX_TYPES)} (Milvus Lite builds "
            f"fewer: {', '.join(LITE_INDEXES)})"
        )
    # The default type follows an existing collection's, whose search parameters are checked on `prepare`.
    check_params(kind, index_params, {} if kind == DEFAULT_INDEX else search_params, lite=None)
    return kind


def check_params(
    index: str, index_params: Mapping[str, Any], search_params: Mapping[str, Any], *, lite: bool | None
) -> None:
    """Checks the parameters of (upper case) `index` on Milvus Lite (`lite`), a server or either (`None`).

    Raises:
        ValueError: Naming the parameter and the accepted ones.
    """
    build, search = SERVER_INDEXES[index]
    if lite is None and index in LITE_INDEXES:
        build, search = build | LITE_INDEXES[index][0], search | LITE_INDEXES[index][1]
    elif lite:
        build, search = LITE_INDEXES[index]
    for what, given, accepted in (("index", index_params, build), ("search", search_params, search)):
        for name, value in given.items():
            if name not in accepted:
                known = ", ".join(sorted(accepted, key=str.lower)) or "none"
                raise ValueError(
                    f"{what} parameter {name!r} is not one {store_kind(lite)} takes for a {index} index "
                    f"(it takes: {known})"
                )
            if name in _INT_RANGES:
                low, high = _INT_RANGES[name]
                if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                    raise ValueError(
                        f"{what} parameter {name}={value!r} of a {index} index must be an integer from "
                        f"{low} to {high}"
                    )


def check_supported(
    index: str, index_params: Mapping[str, Any], search_params: Mapping[str, Any], lite: bool
) -> None:
    """Refuses (`MilvusIndexError`) an index type or parameter this store (Milvus Lite or a server) lacks."""
    if lite and index not in LITE_INDEXES:
        raise MilvusIndexError(
            f"Milvus Lite does not build {index} indexes (it builds {', '.join(LITE_INDEXES)}; a Milvus "
            f"server also builds {', '.join(t for t in SERVER_INDEXES if t not in LITE_INDEXES)}): choose "
            "one of Milvus Lite's, or ingest into a Milvus server (uri='http://host:19530')"
        )
    try:
        check_params(index, index_params, search_params, lite=lite)
    except ValueError as exc:
        raise MilvusIndexError(str(exc)) from None


def build_params(index: str, index_params: Mapping[str, Any], dimensions: int) -> dict[str, Any]:
    """The build parameters of a new collection: `index_params`, with `m` of a PQ index (must divide)."""
    params = dict(index_params)
    if index not in _PQ_TYPES:
        return params
    if "m" not in params:
        params["m"] = next(dimensions // s for s in (4, 2, 1) if dimensions % s == 0)
    elif dimensions % params["m"]:
        raise MilvusIndexError(
            f"index parameter m={params['m']} of a {index} index must divide the vector size "
            f"{dimensions}: choose a divisor (e.g. {dimensions // 4 if dimensions % 4 == 0 else dimensions})"
        )
    return params
