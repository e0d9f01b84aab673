"""The rule for a document id that occurs twice in one ingest run.

Two versions of one document in a run would share point ids (`doc_id`, `chunk_index`): one would overwrite
the other chunk by chunk and leave a mix. By default a repeated id is an error naming both positions; with
`on_duplicate="last"` the last version is ingested and the earlier ones are dropped unread.

The check remembers every document id of the run (memory grows with the number of documents, about a
hundred bytes per id).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any, Literal

from vllm_embed.errors import DuplicateDocumentError
from vllm_embed.ingest.documents import as_document
from vllm_embed.ingest.loaders import located_ids

OnDuplicate = Literal["error", "last"]
"""What `ingest` does with a document id seen twice: raise, or keep the last version."""

ON_DUPLICATE_CHOICES: tuple[OnDuplicate, ...] = ("error", "last")


class DuplicateCheck:
    """Remembers the position (in input order, from 0) of every document id seen."""

    def __init__(self) -> None:
        self._positions: dict[str, int] = {}

    def see(self, doc_id: str, position: int) -> int | None:
        """Records `doc_id` at `position`; returns the position it was seen at before, if it was."""
        earlier = self._positions.get(doc_id)
        self._positions[doc_id] = position
        return earlier


def duplicate_error(
    doc_id: str, first: int, second: int, where: tuple[str | None, str | None] = (None, None)
) -> DuplicateDocumentError:
    """The error for `doc_id` seen at positions `first` and `second` (in files `where`, when known)."""
    places = [
        f"{position} ({at})" if at else str(position)
        for position, at in zip((first, second), where, strict=True)
    ]
    return DuplicateDocumentError(
        f"document id {doc_id!r} occurs twice in the input, at positions {places[0]} and {places[1]} "
        "(in input order, counting from 0; a document without an id has a hash of its text as id); "
        "give each document its own id, or keep the last version with on_duplicate='last' "
        "(CLI --on-duplicate last)"
    )


def can_read_twice(documents: Iterable[Any]) -> bool:
    """Whether `documents` can be read a second time: a list, a loader, anything that is not an iterator."""
    return not isinstance(documents, Iterator)


def _located_ids(
    documents: Iterable[Any], text_field: str, id_field: str | None
) -> Iterator[tuple[str, str | None]]:
    """Yields `(id, where)` of every document; a loader tells `where` (`file:line`) and reads ids cheaply."""
    if any(callable(getattr(documents, name, None)) for name in ("located_ids", "located")):
        yield from located_ids(documents)
        return
    for item in documents:
        yield as_document(item, text_field, id_field).doc_id, None


def superseded_positions(
    documents: Iterable[Any], text_field: str, id_field: str | None, on_duplicate: OnDuplicate
) -> frozenset[int]:
    """Reads every document id ahead of the run; returns the positions that a later version replaces.

    Raises:
        DuplicateDocumentError: For the first repeated id, when `on_duplicate` is `"error"`.
    """
    seen = DuplicateCheck()
    superseded: set[int] = set()
    for position, (doc_id, where) in enumerate(_located_ids(documents, text_field, id_field)):
        earlier = seen.see(doc_id, position)
        if earlier is None:
            continue
        if on_duplicate == "error":
            # Where the first one is, is looked up again only now, rather than kept for every document.
            first_where = next(islice(_located_ids(documents, text_field, id_field), earlier, None))[1]
            raise duplicate_error(doc_id, earlier, position, (first_where, where))
        superseded.add(earlier)
    return frozenset(superseded)
