"""What the Ray ingest decides in the driver before any Ray task: the engine, the chunking, the checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vllm_embed.config import EmbedderConfig
from vllm_embed.ingest.core import check_collection, planned_manifest
from vllm_embed.ingest.options import IngestOptions
from vllm_embed.ray_data.blocks import DocumentPlan, PlannedEngine, plan_chunker
from vllm_embed.sinks.base import Manifest, Sink


def engine_config(
    model: str | None, config: EmbedderConfig | None, settings: dict[str, Any]
) -> EmbedderConfig:
    """The replicas' engine settings, from `config=` or from `model=` and other settings.

    Raises:
        ValueError: For both, or neither.
    """
    if config is not None:
        if model is not None or settings:
            raise ValueError("pass either config=EmbedderConfig(...) or model= and settings, not both")
        return config
    if model is None:
        raise ValueError("pass model= (or config=EmbedderConfig(...))")
    return EmbedderConfig(model=model, **settings)


def check_replicas(replicas: int, batch_size: int) -> None:
    """Refuses fewer than one replica or a batch below one chunk."""
    if replicas < 1:
        raise ValueError(f"replicas={replicas} must be at least 1")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be at least 1")


def served_sizes(config: EmbedderConfig) -> EmbedderConfig:
    """`config` with the output size and longest input its server reports, when the model's files do not tell.

    A served model name without local files (`backend="openai"`) gives neither; `ingest` without Ray asks
    the server when it starts, and so must the plan that the chunking and the replicas follow (one probe of
    the server; a vLLM engine is never started here).
    """
    if config.backend != "openai":
        return config
    from vllm_embed.embedder import Embedder
    from vllm_embed.profiles import detect_profile

    profile = detect_profile(config.model, config.revision, config.profile)
    known = profile.check_dimensions(config.dimensions, config.model) is not None
    if known and (config.max_model_len or profile.max_length) is not None:
        return config
    with Embedder(config=config) as served:
        return config.model_copy(
            update={"dimensions": served.dimension, "max_model_len": served.max_model_len}
        )


def plan_engine(config: EmbedderConfig) -> tuple[dict[str, Any], int | None]:
    """What the replicas' engines will report (`describe()`), and their longest input, without an engine.

    The replicas check it when they start, so a collection's manifest is checked before any replica runs.
    """
    from vllm_embed._version import __version__
    from vllm_embed.profiles import detect_profile

    profile = detect_profile(config.model, config.revision, config.profile)
    dimension = profile.check_dimensions(config.dimensions, config.model)
    if dimension is None:
        raise ValueError(f"the output size of {config.model} is unknown; pass dimensions=")
    description = {
        "model": config.model,
        "profile": profile.family,
        "pooling": profile.pooling,
        "dimensions": dimension,
        "normalized": True,
        "vllm_embed_version": __version__,
    }
    return description, PlannedEngine.load(config).max_input_tokens


@dataclass(frozen=True)
class RunPlan:
    """A Ray ingest as planned in the driver.

    Attributes:
        documents: How rows become documents and chunks (sent to every chunking task).
        expected: What each replica's engine must report when it starts.
        config: The replicas' engine settings.
        manifest: The collection's manifest for this run.
        options: The run's settings.
    """

    documents: DocumentPlan
    expected: dict[str, Any]
    config: EmbedderConfig
    manifest: Manifest
    options: IngestOptions


def plan_run(
    sink: Sink,
    config: EmbedderConfig,
    options: IngestOptions,
    *,
    replicas: int,
    text_column: str,
    id_column: str | None,
    metadata_columns: tuple[str, ...] | str | None,
    splitter_column: str | None,
) -> RunPlan:
    """Checks the arguments, and the collection's manifest if there is one; writes nothing."""
    check_replicas(replicas, options.batch_size)
    config = served_sizes(config)
    description, max_input_tokens = plan_engine(config)
    documents = DocumentPlan(
        config=config,
        chunk_tokens=options.chunk_tokens,
        chunk_overlap=options.chunk_overlap,
        splitter=options.splitter,
        text_column=text_column,
        id_column=id_column,
        metadata_columns=metadata_columns,
        max_document_bytes=options.max_document_bytes,
        layout=sink.layout.name,
        splitter_column=splitter_column,
        max_metadata_bytes=options.max_metadata_bytes,
    )
    # The chunker the Ray tasks build, once here: the manifest records its settings as `ingest` does.
    manifest = planned_manifest(description, sink.layout.name, plan_chunker(documents))
    check_collection(sink, manifest, rechunk=options.rechunk)
    expected = {**description, "max_input_tokens": max_input_tokens}
    del expected["vllm_embed_version"]
    return RunPlan(documents, expected, config, manifest, options)
