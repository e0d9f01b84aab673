"""The learned sparse and multi-vector models of `ingest` and `search`: their flags' checks and engines.

`ingest --sparse-model/--multivector-model` names them; `search` builds them from the collection's manifest.
They run in this process with the dense model's `--dtype`, parallelism (`SHARED_SETTINGS`, which a
`--rerank` model shares too) and long-input policy; `serve --sparse-model` starts its model here as well.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from vllm_embed.config import EmbedderConfig, MultiVectorEmbedderConfig, SparseEmbedderConfig
from vllm_embed.ingest.core import ExtraEmbedders
from vllm_embed.model_source import check_model_source
from vllm_embed.sinks.manifest import Manifest

if TYPE_CHECKING:
    from vllm_embed.learned_sparse import SparseEmbedder
    from vllm_embed.multivector import MultiVectorEmbedder

SHARED_SETTINGS = ("dtype", "tensor_parallel_size", "pipeline_parallel_size", "trust_remote_code")
"""The dense model's engine flags these models run with too."""


def known_vector_kinds(sparse_model: str | None, multivector_model: str | None) -> dict[str, Any]:
    """The manifest fields an ingest's flags decide, compared with the collection's before any engine."""
    return {
        "sparse": "learned" if sparse_model else None,
        "sparse_model": {"model": sparse_model} if sparse_model else None,
        "multivector": {"model": multivector_model} if multivector_model else None,
    }


def check_ray(ray_address: str | None, sparse_model: str | None, multivector_model: str | None) -> None:
    """Refuses `--ray` with a learned sparse or multi-vector model (the replicas run the dense model only).

    (`--hybrid` with `--sparse-model` is refused by the collection checks, which hold for the API too.)

    Raises:
        ValueError: Naming the flag to leave out.
    """
    if ray_address is not None and (sparse_model or multivector_model):
        raise ValueError(
            "--sparse-model and --multivector-model run in this process, not on Ray replicas: leave out --ray"
        )


def start_extra(
    sparse_model: str | None, multivector_model: str | None, config: EmbedderConfig
) -> ExtraEmbedders:
    """Starts the engines of the models an ingest's flags name (each a minute or more on a CPU)."""
    kinds = known_vector_kinds(sparse_model, multivector_model)
    return _start(kinds["sparse_model"], kinds["multivector"], config)


def search_models(
    manifest: Manifest, mode: str, late_interaction: bool, config: EmbedderConfig
) -> ExtraEmbedders:
    """Starts the models a search of this collection in `mode` needs, named by its manifest."""
    sparse = manifest.sparse_model if manifest.sparse == "learned" and mode != "dense" else None
    return _start(sparse, manifest.multivector if late_interaction else None, config)


def _start(
    sparse: Mapping[str, Any] | None, multivector: Mapping[str, Any] | None, config: EmbedderConfig
) -> ExtraEmbedders:
    return ExtraEmbedders(
        None if sparse is None else start_sparse(sparse, config),
        None if multivector is None else start_multivector(multivector, config),
    )


def start_sparse(described: Mapping[str, Any], config: EmbedderConfig) -> SparseEmbedder:
    """Starts a `SparseEmbedder` of a model description (`model`, `revision`) with the dense model's settings.

    Raises:
        SettingsError: For a model that is neither SPLADE nor BGE-M3, before its engine starts.
    """
    from vllm_embed.learned_sparse import SparseEmbedder

    return SparseEmbedder(config=SparseEmbedderConfig(**_settings(described, config)))


def start_multivector(described: Mapping[str, Any], config: EmbedderConfig) -> MultiVectorEmbedder:
    """Starts a `MultiVectorEmbedder` of a model description with the dense model's settings."""
    from vllm_embed.multivector import MultiVectorEmbedder

    return MultiVectorEmbedder(config=MultiVectorEmbedderConfig(**_settings(described, config)))


def _settings(described: Mapping[str, Any], config: EmbedderConfig) -> dict[str, Any]:
    from vllm_embed import cli

    model, revision = str(described["model"]), described.get("revision")
    check_model_source(model, revision)
    cli._say_engine_starts(model, "vllm")
    shared = {name: getattr(config, name) for name in (*SHARED_SETTINGS, "long_input")}
    return {"model": model, "revision": revision, **shared}
