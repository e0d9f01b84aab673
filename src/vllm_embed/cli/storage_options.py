"""Command-line flags for the storage plan of a collection, derived from `vllm_embed.sinks.storage`.

Like the Embedder flags (`engine_options`), each field of `QdrantCollectionSettings`, `QdrantSearchSettings`
and `MilvusIndexSettings` becomes `--field-name` with the field's type, default and description, so a new
storage setting reaches the commands with no edit here. The two dict fields take `KEY=VALUE` items instead
(`--index-param`, `--search-param`), and the sink arguments shared by every store (`--index-field`,
`--adopt`) are declared here. A command receives the values as `storage`, `{sink keyword: value}` (the
`KEY=VALUE` items as given, read by `sink_arguments`, so that a malformed one is an `error:` line of the
command); only the ones given (not at their defaults) reach the sink, and a flag of the other store is
refused.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel

from vllm_embed.cli.engine_options import flag_name, flag_parameters, options_as
from vllm_embed.errors import VllmEmbedError
from vllm_embed.sinks.fusion import FusionSettings
from vllm_embed.sinks.storage import MilvusIndexSettings, QdrantCollectionSettings, QdrantSearchSettings

StorageFlags = dict[str, Any]
"""The storage flags a command received, `{sink keyword argument: value}` (`KEY=VALUE` items unread)."""

STORAGE_PARAMETER = "storage"
"""The parameter of a decorated command that receives its `StorageFlags`."""

STORAGE_PANEL = "Storage options"
"""The `--help` section of the storage flags every store takes."""

QDRANT_PANEL = "Qdrant storage options (--qdrant, --qdrant-edge)"
MILVUS_PANEL = "Milvus storage options (--milvus)"

ITEM_FLAGS: Mapping[str, tuple[str, str]] = {
    "index_params": (
        "--index-param",
        "Milvus index build parameter KEY=VALUE, the value read as JSON (repeatable), "
        "e.g. M=32 or nlist=1024.",
    ),
    "search_params": (
        "--search-param",
        "Milvus search parameter KEY=VALUE, the value read as JSON (repeatable), e.g. ef=64 or nprobe=16.",
    ),
}
"""Dict fields of the settings models, given as repeatable `KEY=VALUE` items: flag and help."""

QDRANT_SETTINGS: tuple[type[BaseModel], ...] = (QdrantCollectionSettings, QdrantSearchSettings)
"""The settings of the Qdrant sinks (`--qdrant`, `--qdrant-edge`)."""

MILVUS_SETTINGS: tuple[type[BaseModel], ...] = (MilvusIndexSettings,)
"""The settings of `MilvusSink` (`--milvus`)."""

SHARED_DEFAULTS: Mapping[str, Any] = {"index_fields": (), "adopt": False}
"""Sink arguments every store takes (`BaseSink`), with their defaults."""

OTHER_STORE_FIX: Mapping[str, str] = {
    "quantization": "on Milvus choose a quantized index, e.g. --index IVF_SQ8 (int8) or --index IVF_PQ",
    "on_disk": "on a Milvus server choose an on-disk index instead: --index DISKANN",
    "hnsw_m": "on Milvus use --index HNSW --index-param M=N",
    "hnsw_ef_construct": "on Milvus use --index HNSW --index-param efConstruction=N",
    "shard_number": "MilvusSink creates collections with the server's shard settings",
    "replication_factor": "MilvusSink creates collections with the server's replica settings",
    "ef": "on Milvus use --search-param ef=N (HNSW index)",
    "oversampling": "Milvus indexes take their search parameters as --search-param KEY=VALUE",
    "rescore": "Milvus indexes take their search parameters as --search-param KEY=VALUE",
    "index": "on Qdrant use --quantization int8|binary, --on-disk, --hnsw-m N, --hnsw-ef-construct N",
    "index_params": "on Qdrant use --quantization int8|binary, --on-disk, --hnsw-m N, --hnsw-ef-construct N",
    "search_params": "on Qdrant use --ef N (and --oversampling X, --no-rescore for a quantized collection)",
}
"""How to say a store-specific setting on the other store, for the refusal."""

_Command = TypeVar("_Command", bound=Callable[..., Any])


class StorageFlagError(VllmEmbedError, ValueError):
    """A storage flag that the chosen store does not take (it belongs to the other store)."""


def parse_items(flag: str, items: Sequence[str] | None) -> dict[str, Any]:
    """Reads repeatable `KEY=VALUE` items; a value that reads as JSON (32, 0.5, true, "x") keeps that type.

    Raises:
        StorageFlagError: For an item without `=` or a key, naming the form.
    """
    parsed: dict[str, Any] = {}
    for item in items or ():
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise StorageFlagError(f"{flag} takes KEY=VALUE (e.g. {flag} M=32), got {item!r}")
        try:
            parsed[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            parsed[key.strip()] = raw
    return parsed


def _panel(model: type[BaseModel]) -> str:
    if model in QDRANT_SETTINGS:
        return QDRANT_PANEL
    return MILVUS_PANEL if model in MILVUS_SETTINGS else STORAGE_PANEL


def _item_flag(field: str, panel: str) -> inspect.Parameter:
    flag, help_text = ITEM_FLAGS[field]
    option = typer.Option(flag, help=help_text, rich_help_panel=panel, show_default=False)
    return inspect.Parameter(
        field, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[list[str] | None, option]
    )


def _shared_flags() -> list[inspect.Parameter]:
    index_field = typer.Option(
        "--index-field",
        help="Metadata field to index for filtering, NAME or NAME:TYPE with TYPE keyword, integer, float or "
        "bool (repeatable); doc_id is always indexed.",
        rich_help_panel=STORAGE_PANEL,
        show_default=False,
    )
    adopt = typer.Option(
        "--adopt",
        help="Take over an existing collection that vllm-embed did not create, when its vector size and "
        "distance fit this run (the manifest is written after the check).",
        rich_help_panel=STORAGE_PANEL,
    )
    return [
        inspect.Parameter(
            "index_fields",
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[list[str] | None, index_field],
        ),
        inspect.Parameter(
            "adopt", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[bool, adopt]
        ),
    ]


def storage_flag_parameters(
    models: Sequence[type[BaseModel]], *, shared: bool = False, skip: Sequence[str] = ()
) -> list[inspect.Parameter]:
    """Returns the typer parameters of the fields of `models` (and the shared sink arguments if `shared`).

    Args:
        models: Settings models of `vllm_embed.sinks.storage`.
        shared: Also `--index-field` and `--adopt` (what a command that creates collections takes).
        skip: Fields left out.
    """
    parameters: list[inspect.Parameter] = []
    for model in models:
        items = [field for field in ITEM_FLAGS if field in model.model_fields and field not in skip]
        parameters += flag_parameters(
            model,
            (*skip, *items),
            not_flags={field: ITEM_FLAGS[field][0] for field in items},
            panel=_panel(model),
        )
        parameters += [_item_flag(field, _panel(model)) for field in items]
    return parameters + (_shared_flags() if shared else [])


def storage_options(
    *models: type[BaseModel], shared: bool = False, skip: Sequence[str] = ()
) -> Callable[[_Command], _Command]:
    """Gives a typer command a flag per storage setting of `models`; the command receives them as `storage`.

    Args:
        *models: Settings models of `vllm_embed.sinks.storage` whose fields become flags.
        shared: Also `--index-field` and `--adopt`.
        skip: Fields left out.
    """
    from_text: dict[str, Callable[[Any], Any]] = {"index_fields": lambda values: tuple(values or ())}
    return options_as(STORAGE_PARAMETER, storage_flag_parameters(models, shared=shared, skip=skip), from_text)


FUSION_PARAMETER = "fusion"
"""The parameter of a decorated command that receives its fusion flags, `{FusionSettings field: value}`."""

FUSION_PANEL = "Hybrid search options (--mode hybrid)"


def fusion_options() -> Callable[[_Command], _Command]:
    """Gives a typer command a flag per `FusionSettings` field; the command receives them as `fusion`.

    The flags: `--fusion`, `--rrf-k`, `--dense-weight`, `--sparse-weight`.
    """
    return options_as(FUSION_PARAMETER, flag_parameters(FusionSettings, panel=FUSION_PANEL))


def defaults() -> dict[str, Any]:
    """The default of every storage setting a flag can give, by sink keyword."""
    values = dict(SHARED_DEFAULTS)
    for model in (*QDRANT_SETTINGS, *MILVUS_SETTINGS):
        for field, info in model.model_fields.items():
            values[field] = info.get_default(call_default_factory=True)
    return values


def flag_of(field: str, value: Any = None) -> str:
    """The flag that gives `field` the `value`, for messages (`--no-x`: a default-on setting turned off)."""
    if field in ITEM_FLAGS:
        return ITEM_FLAGS[field][0]
    flag = flag_name(field)
    return f"--no-{flag[2:]}" if value is False and defaults().get(field) is True else flag


def sink_arguments(store: str, storage: Mapping[str, Any] | None) -> dict[str, Any]:
    """The storage keyword arguments to give the sink of `store`: the settings given (not at defaults).

    Args:
        store: `qdrant`, `qdrant-edge` or `milvus`.
        storage: The storage flags a command received (`StorageFlags`), or `None`.

    Raises:
        StorageFlagError: For a setting of the other store, naming how to say it on this one.
    """
    known = defaults()
    values = dict(storage or {})
    for field, (flag, _help) in ITEM_FLAGS.items():
        if field in values and not isinstance(values[field], Mapping):
            values[field] = parse_items(flag, values[field])
    given = {name: value for name, value in values.items() if value != known.get(name)}
    own = QDRANT_SETTINGS if store.startswith("qdrant") else MILVUS_SETTINGS
    own_fields = {field for model in own for field in model.model_fields} | SHARED_DEFAULTS.keys()
    foreign = [name for name in given if name not in own_fields]
    if foreign:
        name = foreign[0]
        shown = flag_of(name, given[name])
        other = "Milvus" if store.startswith("qdrant") else "Qdrant"
        fix = OTHER_STORE_FIX.get(name, f"leave it out, or use a {other} store")
        raise StorageFlagError(f"{shown} is a {other} setting, not one of --{store}: {fix}")
    return given
