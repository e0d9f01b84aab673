"""What both adapter bases share: a setting's description, the model field, and the checks of their settings.

An adapter is built either from settings (its model and any engine setting) or around an object the caller
already has (`embedder=`, `reranker=`), never both; these helpers state that rule once for `EmbedderAdapter`
and `RerankerAdapter`.
"""

from __future__ import annotations

from collections.abc import Set
from typing import Any

from pydantic import BaseModel, Field, create_model

from vllm_embed.config import EmbedderConfig, EngineSettings


def settings_except_model(config: type[BaseModel], name: str, doc: str, module: str) -> Any:
    """An `EngineSettings` subclass with the other fields of `config` but its model: an adapter's settings.

    The fields, with their defaults, checks and descriptions, are `config`'s own: not restated.

    Args:
        config: The facade's settings model (`RerankerConfig`, `SparseEmbedderConfig`).
        name: The new class's name.
        doc: The new class's docstring.
        module: The module the class is declared in (for its repr and pickling).
    """
    fields = {
        field: (info.annotation, info)
        for field, info in config.model_fields.items()
        if field != "model" and field not in EngineSettings.model_fields
    }
    return create_model(name, __base__=EngineSettings, __module__=module, __doc__=doc, **fields)  # type: ignore[call-overload]


def setting_description(name: str, config: type[BaseModel] = EmbedderConfig) -> str:
    """Returns the description of setting `name`, for an adapter field declared differently.

    Args:
        name: The setting.
        config: The settings model that declares it (`RerankerConfig` for the rerankers).

    Raises:
        KeyError: If `config` has no such setting.
    """
    return config.model_fields[name].description or ""


def model_field(
    default: str | None = None, *, config: type[BaseModel] = EmbedderConfig, given: str = "embedder"
) -> Any:
    """An adapter's model field: described as `config.model`; optional, as `given=` may replace it.

    Args:
        default: The value when it is not given (the framework's own default, if it has one).
        config: The settings model whose `model` it is (`RerankerConfig` for the rerankers).
        given: The adapter's field that takes a ready object instead (`"reranker"` for the rerankers).
    """
    return Field(
        default=default,
        description=f"{setting_description('model', config)} Required unless `{given}` is given.",
    )


def _chosen_model(adapter: EngineSettings, field: str) -> str | None:
    model: str | None = getattr(adapter, field) if field in adapter.model_fields_set else None
    return model


def adopt_given(adapter: EngineSettings, field: str, given: str, model: str, settings: Set[str]) -> None:
    """Checks that no setting comes with `given=`, then names its model in the adapter's model field.

    Args:
        adapter: The adapter being validated.
        field: The adapter's model field.
        given: What the object is passed as (`"embedder"`, `"reranker"`).
        model: The object's model.
        settings: The settings that only describe how to build such an object.

    Raises:
        ValueError: If settings (or another model) were given beside the object.
    """
    conflicting = sorted(adapter.model_fields_set & settings)
    chosen = _chosen_model(adapter, field)
    if chosen is not None and chosen != model:
        conflicting.append(field)
    if conflicting:
        kind = "reranker" if given == "reranker" else "engine"
        owner = "".join(part.capitalize() for part in given.split("_"))  # sparse_embedder: SparseEmbedder
        raise ValueError(
            f"pass either {given}= or {kind} settings, not both (got {', '.join(conflicting)}); "
            f"the {owner}'s own settings apply"
        )
    setattr(adapter, field, model)


def settings_to_build(
    adapter: EngineSettings, field: str, settings: Set[str], example: str
) -> tuple[str, dict[str, Any]]:
    """The model and the settings given to the adapter, to build its object from.

    Args:
        adapter: The adapter being validated.
        field: The adapter's model field.
        settings: The settings that describe how to build the object.
        example: A model named in the error without one.

    Raises:
        ValueError: If no model was given.
    """
    name = type(adapter).__name__
    model = _chosen_model(adapter, field)
    if model is None:
        raise ValueError(f"{name} needs a model: {name}({field}={example!r})")
    chosen = {setting: getattr(adapter, setting) for setting in adapter.model_fields_set & settings}
    # An API key (possibly read from the environment by the adapter) matters to the remote backend only.
    chosen.pop("api_key", None)
    if adapter.backend == "openai" and adapter.api_key is not None:
        chosen["api_key"] = adapter.api_key
    return model, chosen
