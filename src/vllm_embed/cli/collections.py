"""`vllm-embed collections info`: the collections of a store, as the store reports them.

Vector size, distance, storage settings and payload indexes are read back from the store (not from our
manifest), so they show what the engine really does; the model comes from the vllm-embed manifest, and a
collection without one is shown as adoptable.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.filesize import decimal
from rich.markup import escape
from rich.table import Table

from vllm_embed._utils import one_line
from vllm_embed.cli.commands import ApiKeyOpt, MilvusOpt, QdrantEdgeOpt, QdrantOpt, _open_sink
from vllm_embed.cli.output import out, printable, user_errors, warn
from vllm_embed.errors import ManifestError, StoreBusyError
from vllm_embed.sinks.base import BaseSink, CollectionInfo
from vllm_embed.sinks.storage import MilvusIndexSettings, QdrantCollectionSettings

collections_app = typer.Typer(help="Inspect the collections of a store.", no_args_is_help=True)

UNMANAGED = "— (not vllm-embed; --adopt)"
"""What the model column shows for a collection vllm-embed did not create."""

_LISTING = "vllm_embed_listing"
"""Collection name of the sink that only lists its store (it is never created)."""

STORE_FLAGS = ("--qdrant", "--qdrant-edge", "--milvus")

CREATION_SETTINGS: tuple[str, ...] = (
    *QdrantCollectionSettings.model_fields,
    *(field for field in MilvusIndexSettings.model_fields if field != "search_params"),
)
"""Storage keys the table shows: the settings a collection is created with."""


def _is_local(location: str) -> bool:
    return location != ":memory:" and "://" not in location


def _given(*locations: str | None) -> list[tuple[str, str]]:
    """The store flags given, with their values."""
    return [(flag, place) for flag, place in zip(STORE_FLAGS, locations, strict=True) if place is not None]


@contextmanager
def _store(
    qdrant: str | None,
    qdrant_edge: str | None,
    milvus: str | None,
    collection: str | None,
    api_key: str | None,
) -> Iterator[BaseSink]:
    """Opens the store given, refusing a local path that does not exist (listing must not create one)."""
    given = _given(qdrant, qdrant_edge, milvus)
    if len(given) == 1 and _is_local(given[0][1]) and not Path(given[0][1]).expanduser().exists():
        flag, location = given[0]
        raise FileNotFoundError(f"{flag} {location}: no such store (give the path an ingest wrote to)")
    sink = _open_sink(qdrant, milvus, collection or _LISTING, api_key, qdrant_edge=qdrant_edge)
    try:
        yield sink
    finally:
        sink.close()


@dataclass(frozen=True)
class Unreadable:
    """A collection of the store that could not be read (busy, damaged), and why: listed on its own row."""

    name: str
    store: str
    error: Exception

    @property
    def problem(self) -> str:
        """What the table's model column says, short (the warning on stderr gives the whole error)."""
        if isinstance(self.error, StoreBusyError):
            return "busy (open elsewhere)"
        if isinstance(self.error, ManifestError):
            return "damaged manifest"
        return "unreadable"

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: its name, the store and the error."""
        return {"name": self.name, "store": self.store, "error": one_line(self.error)}


def collection_infos(sink: BaseSink) -> list[CollectionInfo | Unreadable]:
    """What the store reports about each of its collections.

    A collection that cannot be read (another process holds it, its manifest is damaged, its engine fails
    to load it) is returned as `Unreadable`: the others are still listed.
    """
    infos: list[CollectionInfo | Unreadable] = []
    for name in sorted(sink.collection_names()):
        try:
            other = sink.for_collection(name)
            try:
                infos.append(other.info())
            finally:
                if other is not sink:
                    other.close()
        except Exception as exc:  # noqa: BLE001 - whatever keeps one collection unread must not hide the rest
            infos.append(Unreadable(name, repr(sink), exc))
    return infos


def settings_text(settings: Mapping[str, Any]) -> str:
    """`key=value` pairs of the settings that are set (nested as `outer.inner=value`, `True` as `key`)."""
    parts = []
    for key, value in settings.items():
        if isinstance(value, Mapping):
            inner = settings_text({f"{key}.{k}": v for k, v in value.items()})
            parts += [inner] if inner else []
        elif value is True:
            parts.append(str(key))
        elif value not in (None, False, "", [], ()):
            parts.append(f"{key}={value}")
    return ", ".join(parts)


def storage_summary(storage: Mapping[str, Any]) -> str:
    """The table's storage column: the creation settings the store reports.

    All its settings but per-segment lists when it reports none of the creation settings by name.
    """
    chosen = {key: storage[key] for key in CREATION_SETTINGS if key in storage}
    shown = chosen or {key: value for key, value in storage.items() if not isinstance(value, list)}
    return settings_text(shown) or "defaults"


def _model(info: CollectionInfo) -> str:
    if info.manifest is None:
        return UNMANAGED
    return info.manifest.model + (" (adopted)" if info.manifest.adopted else "")


def _indexes(info: CollectionInfo) -> str:
    return ", ".join(f"{name} ({kind})" for name, kind in info.payload_indexes.items()) or "—"


def _disk(info: CollectionInfo) -> str:
    return "—" if info.disk_bytes is None else decimal(info.disk_bytes)


def _table(infos: list[CollectionInfo | Unreadable], title: str) -> Table:
    table = Table(title=escape(title))
    for column in ("collection", "points", "dimensions", "distance", "model", "storage", "payload indexes"):
        table.add_column(column, justify="right" if column in ("points", "dimensions") else "left")
    table.add_column("disk", justify="right")
    for info in infos:
        if isinstance(info, Unreadable):
            table.add_row(escape(printable(info.name)), "—", "—", "—", escape(info.problem), "—", "—", "—")
            continue
        table.add_row(
            escape(info.name),
            f"{info.points:,}",
            "—" if info.dimensions is None else str(info.dimensions),
            info.distance or "—",
            escape(_model(info)),
            escape(storage_summary(info.storage)),
            escape(_indexes(info)),
            _disk(info),
        )
    return table


def _shown(value: object) -> str:
    """A setting's value as the details print it: "—" when it has none (never "None")."""
    return "—" if value is None or value == "" else str(value)


def _details(info: CollectionInfo) -> list[str]:
    lines = [
        f"collection: {info.name} in {info.store}",
        f"points: {info.points:,}",
        f"vectors: {'none' if info.dimensions is None else info.dimensions} dimensions, "
        f"{info.distance or 'no'} distance",
        f"storage: {storage_summary(info.storage)}",
        *(
            f"  {key}: {(settings_text(value) or '—') if isinstance(value, Mapping) else _shown(value)}"
            for key, value in info.storage.items()
            if not isinstance(value, list)
        ),
        *(
            f"  {key}[{number}]: {settings_text(item) if isinstance(item, Mapping) else _shown(item)}"
            for key, value in info.storage.items()
            if isinstance(value, list)
            for number, item in enumerate(value)
        ),
        f"payload indexes: {_indexes(info)}",
        f"disk: {_disk(info)}",
        f"model: {_model(info)}",
    ]
    if info.manifest is not None:
        manifest = info.manifest.model_dump(exclude={"model", "adopted"}, exclude_none=True)
        lines += [
            f"  {key}: {(settings_text(value) or 'defaults') if isinstance(value, dict) else _shown(value)}"
            for key, value in manifest.items()
        ]
    return lines


@collections_app.command("info")
def info(
    qdrant: QdrantOpt = None,
    qdrant_edge: QdrantEdgeOpt = None,
    milvus: MilvusOpt = None,
    api_key: ApiKeyOpt = None,
    collection: Annotated[
        str | None,
        typer.Option(
            "--collection",
            "-c",
            help="One collection, in detail \\[default: every collection].",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print a JSON array, one object per collection (one not readable: name, store, error).",
        ),
    ] = False,
) -> None:
    """List the collections of a store: points, vectors, storage settings, payload indexes, size, model.

    A collection that cannot be read (open in another process, a damaged manifest) is listed on its own row
    with the reason, and its whole error is printed as a warning: the other collections are still listed.
    """
    with user_errors(), _store(qdrant, qdrant_edge, milvus, collection, api_key) as sink:
        if collection is not None:
            one = sink.info()
            if as_json:
                print(json.dumps([one.to_dict()], ensure_ascii=False, indent=2))
            else:
                for line in _details(one):
                    out.print(escape(line))
            return
        infos = collection_infos(sink)
    for unreadable in (info for info in infos if isinstance(info, Unreadable)):
        warn(f"collection {unreadable.name!r}: {one_line(unreadable.error)}")
    if as_json:
        print(json.dumps([i.to_dict() for i in infos], ensure_ascii=False, indent=2))
    elif not infos:
        out.print(f"no collections in {escape(repr(sink))}")
    else:
        title = " ".join(f"{flag} {location}" for flag, location in _given(qdrant, qdrant_edge, milvus))
        table = _table(infos, title)
        # Piped or captured output is not cut to a terminal's width: nothing of a cell is lost.
        if out.is_terminal:
            out.print(table)
        else:
            width = out.measure(table, options=out.options.update_width(10_000)).maximum
            Console(file=out.file, width=max(out.width, width), highlight=False).print(table)
