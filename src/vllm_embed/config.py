"""Configuration models: what decides how an `Embedder`, a `Reranker` or a token-level embedder is built."""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from vllm_embed.errors import SettingsError
from vllm_embed.profiles import ModelProfile

LongInputPolicy = Literal["chunk", "truncate", "error"]
RerankLongInputPolicy = Literal["truncate", "error"]
BackendName = Literal["vllm", "openai"]
LogLevel = Literal["debug", "info", "warning", "error"]

API_KEY_VARIABLES = ("VLLM_EMBED_API_KEY", "OPENAI_API_KEY")
"""Environment variables read, in this order, for `api_key` when it is not given."""


DEFAULT_CACHE_MAX_BYTES = 2 << 30
"""Default size bound of the embedding cache file, in bytes (`cache_max_bytes`, `EmbeddingCache`)."""


class EngineSettings(BaseModel):
    """The settings every engine-backed facade shares (`Embedder`, `Reranker`), each declared once.

    `EmbedderSettings` and `RerankerConfig` inherit them. Attribute docstrings become the fields'
    descriptions.
    """

    model_config = ConfigDict(
        use_attribute_docstrings=True, arbitrary_types_allowed=True, hide_input_in_errors=True
    )

    dtype: str = "auto"
    """Weights/activations dtype passed to vLLM (`"auto"`, `"float32"`, `"bfloat16"`, `"float16"`)."""

    max_model_len: int | None = Field(default=None, gt=0)
    """Longest input in tokens the engine accepts; `None` uses the model's own limit."""

    tensor_parallel_size: int = Field(default=1, ge=1)
    """Number of devices each layer is split over (vLLM tensor parallelism)."""

    pipeline_parallel_size: int = Field(default=1, ge=1)
    """Number of pipeline stages the layers are split over (vLLM pipeline parallelism)."""

    gpu_memory_utilization: float | None = Field(default=None, gt=0, le=1)
    """Fraction of device memory vLLM may reserve. `None` picks a small default that leaves room for
    several engines (on CPU this fraction is of system RAM)."""

    trust_remote_code: bool = False
    """Allow model repositories to run their own Python code."""

    revision: str | None = None
    """Model revision (branch, tag or commit) on the model hub."""

    batch_size: int = Field(default=2048, ge=1)
    """Inputs handed to the engine per submission; bounds memory for very large lists."""

    backend: BackendName = "vllm"
    """`"vllm"` runs the model in this process; `"openai"` calls an OpenAI-compatible server."""

    base_url: str | None = None
    """Server URL for `backend="openai"`, e.g. `http://127.0.0.1:8000/v1`."""

    api_key: SecretStr | None = Field(default=None, repr=False)
    """API key for `backend="openai"`; falls back to the `VLLM_EMBED_API_KEY` / `OPENAI_API_KEY` variables."""

    # -- backend="openai" only ---------------------------------------------------------------------

    request_batch_size: int = Field(default=64, ge=1)
    """Texts per HTTP request to the server (`backend="openai"`)."""

    max_concurrent_requests: int = Field(default=4, ge=1)
    """Requests in flight at once to the server, per instance (`backend="openai"`)."""

    timeout: float = Field(default=60.0, gt=0)
    """Seconds one HTTP request may take before it counts as failed and is retried (`backend="openai"`)."""

    retry_seconds: float = Field(default=30.0, ge=0)
    """Total time budget for retrying connection errors, 429 and 5xx before giving up (`backend="openai"`);
    0 disables retries."""

    engine_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Extra keyword arguments passed unchanged to the engine (`vllm.LLM`)."""

    log_level: LogLevel | None = None
    """How much of vLLM's output reaches stderr: `info` or `debug` show its start-up and shutdown logs,
    `warning` (the default, unless `VLLM_EMBED_LOG_LEVEL` says otherwise) only warnings. All of it goes to a
    log file, which an engine-start error names."""

    @model_validator(mode="before")
    @classmethod
    def _credentials_out_of_base_url(cls, data: Any) -> Any:
        """Moves a key written into `base_url` (`http://user:KEY@host/v1`) into `api_key`.

        So no `repr`, log line or error shows it (errors never echo inputs: `hide_input_in_errors`).
        """
        from vllm_embed._secrets import split_user_info

        if not isinstance(data, dict) or not isinstance(data.get("base_url"), str):
            return data
        url, secret = split_user_info(data["base_url"])
        if url == data["base_url"]:
            return data
        given = data.get("api_key")
        given = given.get_secret_value() if isinstance(given, SecretStr) else given
        if secret is not None and given and given != secret:
            raise ValueError(
                "base_url carries an API key that differs from api_key=; pass the key once, as api_key= "
                "(or in VLLM_EMBED_API_KEY), and base_url without 'user:key@'"
            )
        return {**data, "base_url": url, "api_key": given or secret}


class EmbedderSettings(EngineSettings):
    """Every setting of an `Embedder` except the model, each declared once with its description.

    `EmbedderConfig` adds the model; the framework adapters (`vllm_embed.adapters`) inherit these fields, so a
    setting added here reaches them too. Attribute docstrings become the fields' descriptions.
    """

    dimensions: int | None = None
    """Output size. `None` keeps the model's native size; smaller values need a Matryoshka-trained model."""

    long_input: LongInputPolicy = "chunk"
    """What to do with an input longer than the model accepts: `"chunk"` embeds token windows and returns
    their token-weighted mean, `"truncate"` cuts it, `"error"` raises `ValueError`."""

    query_instruction: str | None = None
    """Default task instruction for queries (instruction-tuned models); `None` uses the model's default."""

    profile: str | ModelProfile | None = None
    """Model family override (`"qwen3-embedding"`, `"sentence-transformers"`) or a full `ModelProfile`,
    for models whose files or name do not reveal it."""

    cache: bool | str | Path | None = None
    """Persistent embedding cache: `None`/`False` off, `True` per-user cache file, or a SQLite file path."""

    cache_max_bytes: int = Field(default=DEFAULT_CACHE_MAX_BYTES, gt=0)
    """Size bound of the cache file; least-recently-used entries are evicted past it."""


def check_setting_names(given: Iterable[str], known: Collection[str], owner: str) -> None:
    """Refuses settings `owner` does not have, suggesting the closest name of each ("did you mean").

    Raises:
        SettingsError: If a name in `given` is not in `known`.
    """
    unknown = [name for name in given if name not in known]
    if not unknown:
        return
    described = []
    for name in unknown:
        close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
        described.append(f"{name}= (did you mean {close[0]}=?)" if close else f"{name}=")
    raise SettingsError(
        f"{owner.removesuffix('Config')} has no setting {', '.join(described)}; "
        f"its settings are listed in help({owner})"
    )


class EngineConfigChecks(BaseModel):
    """The model field and the checks of every frozen facade configuration.

    `EmbedderConfig` and `RerankerConfig` inherit it, so both validate `engine_kwargs` alike (`base_url` is
    checked on `EngineSettings`, which the framework adapters inherit too).
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", use_attribute_docstrings=True, hide_input_in_errors=True
    )

    model: str = Field(min_length=1)
    """Hugging Face model id or local directory (for `backend="openai"`: the served model name)."""

    def __init__(self, **data: Any) -> None:
        # pydantic's own "Extra inputs are not permitted" does not say what was meant.
        check_setting_names(data, type(self).model_fields, type(self).__name__)
        super().__init__(**data)

    @field_validator("engine_kwargs", check_fields=False)
    @classmethod
    def _no_reserved_engine_kwargs(cls, value: dict[str, Any]) -> dict[str, Any]:
        reserved = {"model", "runner", "task"} & value.keys()
        if reserved:
            raise ValueError(
                f"engine_kwargs may not set {sorted(reserved)}: pass the model as `model=` "
                "(the pooling runner is always used)"
            )
        return value


class EmbedderConfig(EmbedderSettings, EngineConfigChecks):
    """Settings of an `Embedder`; `Embedder(**kwargs)` builds one of these.

    Frozen and strict: an unknown or misspelt setting is rejected rather than silently ignored.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    @field_validator("dimensions")
    @classmethod
    def _positive_dimensions(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError(f"dimensions={value} must be a positive integer (or None for the native size)")
        return value


class RerankerConfig(EngineSettings, EngineConfigChecks):
    """Settings of a `Reranker`; `Reranker(**kwargs)` builds one of these.

    Frozen and strict like `EmbedderConfig`, with which it shares the engine and server settings.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    instruction: str | None = None
    """Task instruction for instruction-tuned rerankers (Qwen3-Reranker); `None` uses the model's default."""

    profile: str | None = None
    """Model family override (`"qwen3-reranker"`, `"cross-encoder"`) for models whose files or name do not
    reveal it."""

    long_input: RerankLongInputPolicy = "truncate"
    """What to do with a (query, document) pair longer than the model accepts: `"truncate"` cuts the document
    (never the query), `"error"` raises `ValueError` naming the document's index."""


class TokenEmbedderSettings(EngineSettings, EngineConfigChecks):
    """Settings every token-level embedder shares (`SparseEmbedder`, `MultiVectorEmbedder`).

    They run the model's own poolers (SPLADE, ColBERT, BGE-M3), so there are no prompts, dimensions or
    profile to choose; the persistent cache holds fixed-width vectors only and does not apply.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    long_input: LongInputPolicy = "chunk"
    """What to do with an input longer than the model accepts: `"chunk"` runs token windows and combines them
    (a sparse vector keeps each term's max over windows, a multi-vector embedding holds every window's rows),
    `"truncate"` cuts it, `"error"` raises `ValueError`."""


class SparseEmbedderConfig(TokenEmbedderSettings):
    """Settings of a `SparseEmbedder`; `SparseEmbedder(**kwargs)` builds one of these."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_terms: int | None = Field(default=None, gt=0)
    """Keep only this many highest-weighted terms per text (`None` keeps every non-zero term); bounds what a
    very long document costs in the store."""


class MultiVectorEmbedderConfig(TokenEmbedderSettings):
    """Settings of a `MultiVectorEmbedder`; `MultiVectorEmbedder(**kwargs)` builds one of these."""

    model_config = ConfigDict(frozen=True, extra="forbid")
