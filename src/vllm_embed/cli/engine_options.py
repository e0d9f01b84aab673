"""Command-line flags for the Embedder settings, derived from `EmbedderConfig.model_fields`.

One declaration, as vLLM's `EngineArgs.add_cli_args` derives its flags from its dataclass: each field becomes
`--field-name` with the field's type, default and description, so a new `EmbedderConfig` setting reaches
every command with no edit here (or one line in `NOT_FLAGS` / `SHORT_NAMES` / `FROM_TEXT`).
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import annotated_types
import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from rich.markup import escape

from vllm_embed.config import EmbedderConfig

EngineSettings = dict[str, Any]
"""The Embedder settings a command received, `{field name: value}`, ready for `EmbedderConfig(**settings)`."""

SETTINGS_PARAMETER = "settings"
"""The parameter of a decorated command that receives its `EngineSettings`."""

NOT_FLAGS: Mapping[str, str] = {
    "api_key": "read from the VLLM_EMBED_API_KEY / OPENAI_API_KEY variables, never from the command line",
    "engine_kwargs": "a dict of vLLM arguments has no flag form; use the Python API",
    "batch_size": "`ingest --batch-size` already bounds each embedding call",
    "log_level": "the global `--log-level` (before the command) sets it for every engine",
}
"""`EmbedderConfig` fields that are not command-line flags, with the reason."""

SHORT_NAMES: Mapping[str, str] = {"model": "-m", "dimensions": "-d"}

FROM_TEXT: Mapping[str, Callable[[Any], Any]] = {
    "cache": lambda value: True if value == "user" else value,
}
"""Fields whose flag text means something else than the Python value (`--cache user` is `cache=True`)."""

HELP_OVERRIDES: Mapping[str, str] = {
    "cache": "Persistent embedding cache: a SQLite file, or 'user' for the per-user cache.",
}
"""Help of flags whose Python description speaks of Python values the flag does not take."""

ENGINE_PANEL = "Embedder options"
"""The `--help` section of the derived flags."""

_SIMPLE_TYPES = (str, int, float, bool, Path)

_Command = TypeVar("_Command", bound=Callable[..., Any])


def flag_name(field: str) -> str:
    """`--max-model-len` for `max_model_len`."""
    return "--" + field.replace("_", "-")


def help_text(description: str | None) -> str:
    """A field description as flag help: one line, no Markdown backticks, and square brackets kept.

    Typer renders help as rich markup, where `[default: …]` or `[x]` would read as a style tag and vanish.
    """
    return escape(" ".join((description or "").replace("`", "").split()))


def _flag_type(field: str, info: FieldInfo, owner: str = "EmbedderConfig") -> Any:
    """The type typer parses a field's flag as: its own when simple, `str` for a union of several types."""
    annotation: Any = info.annotation
    optional = False
    if get_origin(annotation) in (Union, types.UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        optional = len(members) < len(get_args(annotation))
        annotation = members[0] if len(members) == 1 else str
    if get_origin(annotation) is not Literal and annotation not in _SIMPLE_TYPES:
        raise TypeError(
            f"{owner}.{field} ({info.annotation}) has no command-line form: add it to "
            "vllm_embed.cli.engine_options.NOT_FLAGS (or the not_flags of its options), with the reason"
        )
    return annotation | None if optional else annotation


def _bounds(info: FieldInfo, flag_type: Any) -> dict[str, Any]:
    """Range checks typer can make while parsing (pydantic checks the rest when the config is built)."""
    integer = flag_type in (int, int | None)
    bounds: dict[str, Any] = {}
    for constraint in info.metadata:
        if isinstance(constraint, annotated_types.Ge):
            bounds["min"] = constraint.ge
        elif isinstance(constraint, annotated_types.Gt) and integer:
            bounds["min"] = int(constraint.gt) + 1  # type: ignore[call-overload]
        elif isinstance(constraint, annotated_types.Le):
            bounds["max"] = constraint.le
    return bounds


def flag_parameters(
    config: type[BaseModel] = EmbedderConfig,
    skip: Collection[str] = (),
    *,
    not_flags: Mapping[str, str] = NOT_FLAGS,
    panel: str = ENGINE_PANEL,
) -> list[inspect.Parameter]:
    """Returns one keyword-only typer parameter per field of `config` that is a flag.

    Args:
        config: The settings model (`EmbedderConfig`; another model in tests).
        skip: Fields the command declares itself or does not take.
        not_flags: Fields that are not flags, with the reason.
        panel: The `--help` section of the flags (required ones stay in the main section).

    Raises:
        TypeError: For a field whose type has no flag form and is not in `NOT_FLAGS`.
    """
    parameters = []
    for field, info in config.model_fields.items():
        if field in not_flags or field in skip:
            continue
        flag_type = _flag_type(field, info, config.__name__)
        name = flag_name(field)
        if flag_type is bool and info.default is True:  # a flag that is on by default needs its off form
            name = f"{name}/--no-{name[2:]}"
        option = typer.Option(
            name,
            *([SHORT_NAMES[field]] if field in SHORT_NAMES else []),
            help=HELP_OVERRIDES.get(field) or help_text(info.description),
            rich_help_panel=None if info.is_required() else panel,
            show_default=info.default is not None,
            **_bounds(info, flag_type),
        )
        default = (
            inspect.Parameter.empty if info.is_required() else info.get_default(call_default_factory=True)
        )
        parameters.append(
            inspect.Parameter(
                field,
                inspect.Parameter.KEYWORD_ONLY,
                default=default,
                annotation=Annotated[flag_type, option],
            )
        )
    return parameters


def embedder_options(
    *, skip: Collection[str] = (), config: type[BaseModel] = EmbedderConfig
) -> Callable[[_Command], _Command]:
    """Gives a typer command a flag per Embedder setting; the command receives them as `settings`.

    The decorated command declares a `settings: EngineSettings` parameter (not a flag itself) and builds the
    config with `EmbedderConfig(**settings)`, adding any setting it takes in its own way (listed in `skip`).

    Args:
        skip: Fields the command declares itself (e.g. `model` with another default) or does not take.
        config: The settings model the flags come from.
    """
    return options_as(SETTINGS_PARAMETER, flag_parameters(config, skip), FROM_TEXT)


def options_as(
    parameter: str,
    flags: list[inspect.Parameter],
    from_text: Mapping[str, Callable[[Any], Any]] | None = None,
) -> Callable[[_Command], _Command]:
    """Gives a typer command the `flags`; the command receives their values as one dict, `parameter`.

    Args:
        parameter: The command's parameter (not a flag itself) that receives `{flag parameter: value}`.
        flags: Keyword-only typer parameters, e.g. from `flag_parameters`.
        from_text: Conversions of flag values into the values the command receives, by parameter name.
    """
    convert = from_text or {}

    def decorate(command: _Command) -> _Command:
        signature = inspect.signature(command, eval_str=True)
        if parameter not in signature.parameters:
            raise TypeError(f"{command.__name__} must take a `{parameter}` parameter")
        own = [
            each.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            for each in signature.parameters.values()
            if each.name != parameter
        ]
        names = [flag.name for flag in flags]
        clash = set(names) & {each.name for each in own}
        if clash:
            raise TypeError(f"{command.__name__} declares {sorted(clash)} itself: add them to skip=")

        @functools.wraps(command)
        def run(*args: Any, **kwargs: Any) -> Any:
            values = {name: convert.get(name, _same)(kwargs.pop(name)) for name in names}
            return command(*args, **kwargs, **{parameter: values})

        required = [flag for flag in flags if flag.default is inspect.Parameter.empty]
        parameters = [*required, *own, *(flag for flag in flags if flag not in required)]
        run.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in parameters} | {
            "return": signature.return_annotation
        }
        return run  # type: ignore[return-value]

    return decorate


def _same(value: Any) -> Any:
    return value
