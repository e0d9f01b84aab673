"""Collection names each store accepts, checked once when a sink is built (no I/O, before any engine)."""

from __future__ import annotations

import re
import unicodedata

from vllm_embed.errors import VllmEmbedError


class CollectionNameError(VllmEmbedError, ValueError):
    """A collection name the store would refuse (or mishandle); the message names the rule."""


_QDRANT_FORBIDDEN = '<>:"/\\|?*'
_MILVUS_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
QDRANT_MAX_BYTES = 255
"""Longest collection name a Qdrant server accepts (a directory name on its disk)."""
EDGE_MAX_BYTES = 232
"""Longest name of an embedded (edge) collection: its hidden `.<name>.creating-<12 hex>` build directory
must also fit the file system's 255-byte name limit."""
MILVUS_MAX_CHARS = 255
"""Longest collection name Milvus accepts."""


def _common(name: str) -> str | None:
    if not name:
        return "must be a non-empty name"
    if name != name.strip():
        return "must not start or end with white space"
    if any(unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") for char in name):
        return "must not contain control characters (newlines, tabs, escapes)"
    return None


def qdrant_name_problem(name: str, *, max_bytes: int = QDRANT_MAX_BYTES) -> str | None:
    """What is wrong with `name` under the Qdrant server's rules (`max_bytes` UTF-8 bytes), or `None`."""
    problem = _common(name)
    if problem:
        return problem
    if name in {".", ".."} or name.startswith("."):
        return "must not start with '.'"
    bad = sorted({char for char in name if char in _QDRANT_FORBIDDEN})
    if bad:
        return f"must not contain {' '.join(bad)} (Qdrant forbids {_QDRANT_FORBIDDEN})"
    size = len(name.encode("utf-8"))
    if size > max_bytes:
        return f"is {size} bytes long, over the {max_bytes}-byte limit"
    return None


def milvus_name_problem(name: str) -> str | None:
    """What is wrong with `name` as a Milvus collection name, or `None`."""
    problem = _common(name)
    if problem:
        return problem
    if not _MILVUS_NAME.fullmatch(name):
        return "must start with a letter or '_' and hold only ASCII letters, digits and '_' (Milvus's rule)"
    if len(name) > MILVUS_MAX_CHARS:
        return f"is {len(name)} characters long, over Milvus's limit of {MILVUS_MAX_CHARS}"
    return None


def check_name(name: object, problem: str | None, store: str) -> None:
    """Raises `CollectionNameError` with `problem` (from one of the functions above) when there is one."""
    if problem is not None:
        shown = name if not isinstance(name, str) or len(name) <= 60 else name[:57] + "..."
        raise CollectionNameError(f"collection name {shown!r} {problem}: choose another name for {store}")


class StorePathError(VllmEmbedError, ValueError):
    """A local store's path is not what the store keeps there (a file for a directory, or missing)."""
