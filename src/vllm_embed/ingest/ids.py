"""Deterministic ids: the same chunk of the same document always gets the same point id."""

from __future__ import annotations

import hashlib
import json
import uuid

# Fixed forever: changing it would give every stored chunk a new id and break resumption.
_NAMESPACE = uuid.UUID("6f1c8e4a-2b7d-5c3e-9a10-7d2f4b8c1e53")


def point_id(doc_id: str, chunk_index: int) -> str:
    """Returns the point id (a UUID string) of chunk `chunk_index` of document `doc_id`."""
    # JSON keeps the two parts apart whatever characters the document id holds.
    return str(uuid.uuid5(_NAMESPACE, json.dumps([doc_id, chunk_index], ensure_ascii=False)))


def content_id(text: str) -> str:
    """Returns an id derived from a document's text, for documents that come without one."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
