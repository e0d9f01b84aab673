"""Which dense index types and parameters a Milvus store builds, and the checks `MilvusSink` runs on them.

Milvus Lite (a `.db` path, and the `python -m milvus_lite server` process, which serves the same engine over
gRPC) builds fewer index types than a Milvus server, and records any other type without building it: it
then searches by brute force and logs a background error on every flush. Unknown build or search
parameters are ignored by both without a word. So `MilvusSink` checks the type and every parameter name
here, before anything is written.

Parameter defaults: the sink sends only what is given, so a store's own defaults apply (Milvus Lite: HNSW
`M=16, efConstruction=200`, `ef=64`; IVF `nlist=128`, `nprobe=10`). The one exception is `m` of the
product-quantized types (server only), which a Milvus server requires and which must divide the vector
size: when missing it is set to `dimensions / 4` (else `/ 2`, else `dimensions`): 8-bit codes of four
dimensions, 8× smaller than float32.
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
    "M": (2, 2048),
    "efConstruction": (1, 2**31 - 1),
    "nlist": (1, 65536),
    "m": (1, 65536),
    "nbits": (1, 24),
    "nrq": (1, 16),
    "ef": (1, 2**31 - 1),
    "nprobe": (1, 65536),
    "level": (1, 10),
    "refine_k": (1, 2**31 - 1),
    "reorder_k": (1, 2**31 - 1),
    "search_list": (1, 2**31 - 1),
    "rbq_query_bits": (0, 8),
}


class MilvusIndexError(StorageSettingsError):
    """A Milvus index type or parameter this store does not build, or an index field it cannot index."""


def store_kind(lite: bool | None) -> str:
    """How the messages name a store (`None`: any)."""
    return {True: "Milvus Lite", False: "a Milvus server", None: "Milvus"}[lite]


def check_index(index: str, index_params: Mapping[str, Any], search_params: Mapping[str, Any]) -> str:
    """Checks an index type and its parameter names and values against every type a Milvus server builds.

    Returns:
        The index type in upper case.

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
    """Checks the parameter names of index type `index` (known to the store) and their integer ranges.

    Args:
        index: The index type, upper case.
        index_params: Its build parameters.
        search_params: Its search parameters.
        lite: Whether the store is Milvus Lite (`None`: either store).

    Raises:
        ValueError: Naming the parameter, the accepted ones, and which store accepts them.
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
    """Refuses an index type or parameter that this store (Milvus Lite or a server) does not build.

    Raises:
        MilvusIndexError: Listing what this store builds, and saying when a Milvus server builds more.
    """
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
    """The build parameters sent for a new collection of `dimensions`: `index_params`, with `m` of a PQ index.

    Raises:
        MilvusIndexError: If a PQ index's `m` does not divide `dimensions`.
    """
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
