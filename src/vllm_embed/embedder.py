"""The `Embedder` facade: validation → prompts → deduplication → long-input policy → engine → unit vectors.

(Over ~500 lines: the public API users read first — its docstrings are most of the length — and the
sync, async and cached paths that must stay one pipeline.)
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from vllm_embed._utils import Vectors, batched, first_vector_problem, unit_rows
from vllm_embed._version import __version__
from vllm_embed.backends.base import Backend, EngineInput
from vllm_embed.cache import CacheStats, EmbeddingCache, default_cache_path, model_fingerprint, namespace_key
from vllm_embed.config import EmbedderConfig
from vllm_embed.errors import InvalidVectorError
from vllm_embed.facade import (
    EngineFacade,
    check_text,
    load_tokenizer,
    special_affixes,
    text_list,
    token_windows,
)
from vllm_embed.profiles import ModelProfile, detect_profile

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

Kind = Literal["document", "query"]


def _create_backend(config: EmbedderConfig, profile: ModelProfile) -> Backend:
    if config.backend == "openai":
        from vllm_embed.backends.openai import OpenAIRemoteBackend

        return OpenAIRemoteBackend(config, profile)
    from vllm_embed.backends.vllm_local import VLLMLocalBackend

    return VLLMLocalBackend(config, profile)


def _close_backends(backends: list[Backend]) -> None:
    for backend in backends:
        backend.close()


def _open_cache(config: EmbedderConfig) -> EmbeddingCache | None:
    if config.cache is None or config.cache is False:
        return None
    path = default_cache_path() if config.cache is True else Path(config.cache)
    return EmbeddingCache(path, max_bytes=config.cache_max_bytes)


def prompt_affixes(tokenizer: PreTrainedTokenizerBase, profile: ModelProfile) -> tuple[list[int], list[int]]:
    """Returns the token ids that go before and after every text for this tokenizer and profile.

    They are what the tokenizer itself adds (e.g. `[CLS]`/`[SEP]`), plus the EOS token at the end when the
    profile pools the last token and the tokenizer does not append EOS by itself.
    """
    prefix, suffix = special_affixes(tokenizer)
    eos = tokenizer.eos_token_id
    if profile.append_eos and isinstance(eos, int) and suffix[-1:] != [eos]:
        suffix.append(eos)
    return prefix, suffix


@dataclass
class _EngineInputs:
    """Engine inputs for a slice of unique texts, and how their rows fold back into those texts."""

    inputs: list[EngineInput]
    owners: npt.NDArray[np.intp]  # row of the unique-text matrix each input belongs to
    weights: npt.NDArray[np.float32]  # token count of each input (for the weighted mean of chunks)


class _Plan:
    """One embedding call: the unique texts, cache hits, the batches to send, and the assembled result.

    Sync and async calls share it, so both apply exactly the same policy.
    """

    def __init__(
        self, embedder: Embedder, prompted: list[str], token_ids: Sequence[Sequence[int]] | None = None
    ) -> None:
        self._embedder = embedder
        positions: dict[str, int] = {}
        self.inverse = np.empty(len(prompted), dtype=np.intp)
        first: list[int] = []
        for index, text in enumerate(prompted):
            row = positions.get(text)
            if row is None:
                row = positions[text] = len(first)
                first.append(index)
            self.inverse[index] = row
        self.unique = list(positions)
        self.first_index = np.asarray(first, dtype=np.intp)
        # The prompted token ids of each unique text, when the caller tokenised them already.
        self.token_ids = None if token_ids is None else [token_ids[index] for index in first]
        self.sums = np.zeros((len(self.unique), embedder.dimension), dtype=np.float32)
        self.todo: list[int] = list(range(len(self.unique)))
        self._keys: list[bytes] = []
        cache = embedder._cache
        if cache is not None and self.unique:
            self._keys = cache.keys(embedder._cache_namespace, self.unique)
            found = cache.get_many(self._keys, embedder.dimension)
            for row, vector in found.items():
                self.sums[row] = vector
            self.todo = [row for row in self.todo if row not in found]
            embedder._count_cache(hits=len(found), misses=len(self.todo))

    def batches(self) -> Iterator[_EngineInputs]:
        for rows in batched(self.todo, self._embedder.config.batch_size):
            ids = None if self.token_ids is None else [self.token_ids[row] for row in rows]
            yield self._embedder._prepare([self.unique[row] for row in rows], rows, self.first_index, ids)

    def add(self, batch: _EngineInputs, vectors: object) -> None:
        """Folds a backend's answer for `batch` into the result, after checking every row of it.

        Raises:
            InvalidVectorError: If a row is not finite, has the wrong length or has zero norm; nothing of
                the batch is added or cached.
        """
        owners = self.first_index[batch.owners]  # the caller's index of each input's text
        unit = _checked_unit_rows(vectors, len(batch.inputs), self.sums.shape[1], owners, self._embedder)
        np.add.at(self.sums, batch.owners, unit * batch.weights[:, None])
        cache = self._embedder._cache
        if cache is not None:
            rows = np.unique(batch.owners)
            cache.put_many([self._keys[row] for row in rows], unit_rows(self.sums[rows]))

    def result(self) -> Vectors:
        result: Vectors = unit_rows(self.sums)[self.inverse]
        return result


def _checked_unit_rows(
    vectors: object, count: int, width: int, indexes: npt.NDArray[np.intp], embedder: Embedder
) -> Vectors:
    """Checks a backend's rows (count, length, finite, non-zero norm) and returns them at unit length.

    Norms are taken in float64: a finite float32 row such as `[1e38, 1e38]` has a norm that overflows
    float32 but a well-defined direction.

    Args:
        vectors: What the backend returned for `count` inputs.
        count: How many rows are expected.
        width: How long each row must be.
        indexes: The caller's index of the text behind each row (named in errors).
        embedder: The Embedder (names the backend in errors).

    Raises:
        InvalidVectorError: On the first bad row.
    """
    rows: Sequence[object] | Vectors
    if isinstance(vectors, np.ndarray) and vectors.ndim == 2:
        rows = vectors
    elif isinstance(vectors, Iterable):
        rows = list(vectors)
    else:
        raise InvalidVectorError(
            f"{embedder._backend_label()} returned {type(vectors).__name__} instead of {count} vectors; "
            "nothing of this batch was cached or returned"
        )
    if len(rows) != count:
        raise InvalidVectorError(
            f"{embedder._backend_label()} returned {len(rows)} vectors for {count} inputs; "
            "nothing of this batch was cached or returned"
        )
    try:
        values = np.asarray(rows, dtype=np.float64)
    except (TypeError, ValueError):  # ragged rows, or rows holding something other than numbers
        values = np.empty((count, 0))
    if values.shape == (count, width):
        norms = np.linalg.norm(values, axis=1)
        good = np.isfinite(values).all(axis=1) & (norms > 0)
        if good.all():
            unit: Vectors = (values / norms[:, None]).astype(np.float32)
            return unit
    bad = first_vector_problem(rows, width)
    if bad is None:
        raise AssertionError("unreachable: a batch that fails the check has a bad row")
    position, problem = bad
    raise InvalidVectorError(
        f"{embedder._backend_label()} returned a bad vector for texts[{indexes[position]}]: it "
        f"{problem}; nothing of this batch was cached or returned. Check the model (a broken "
        "checkpoint, or a dtype that overflows such as float16) or the server"
    )


class Embedder(EngineFacade[EmbedderConfig]):
    """Embeds queries and documents with the right prompts, as L2-normalised float32 numpy arrays.

    Keyword arguments are the fields of `EmbedderConfig`; `Embedder(config=EmbedderConfig(...))` works too.
    Embedders with identical engine settings in one process share one engine. Use it as a context
    manager, or call `close()`, to release the engine.

    Example:
        >>> with Embedder(model="Qwen/Qwen3-Embedding-0.6B", dimensions=256) as emb:
        ...     docs = emb.embed_documents(["vLLM is fast.", "Qdrant stores vectors."])
        ...     query = emb.embed_query("Which engine is fast?")
        ...     scores = docs @ query

    Raises:
        ValueError: At construction, for settings the model cannot honour (e.g. `dimensions` outside the
            model's Matryoshka range), before any engine starts.
    """

    _config_type = EmbedderConfig
    _example_model = "Qwen/Qwen3-Embedding-0.6B"

    def __init__(
        self, model: str | None = None, *, config: EmbedderConfig | None = None, **kwargs: Any
    ) -> None:
        super().__init__(model, config, kwargs)
        self._plan(self.config)
        self._live_backend()

    @classmethod
    def _unstarted(cls, config: EmbedderConfig, on_start: Callable[[], None] | None = None) -> Embedder:
        """Internal: an Embedder whose engine starts on its first embedding call, not now.

        What it reports before (`dimension`, `max_input_tokens`, `describe()`) comes from the model's
        files, as `Embedder` plans it; the engine is checked against it when it starts. A model whose
        output size or longest input is not in its files gets its engine now. `on_start` runs just
        before the engine starts (the CLI says so).
        """
        embedder = cls.__new__(cls)
        EngineFacade.__init__(embedder, None, config, {})
        embedder._plan(config)
        embedder._on_start = on_start
        if not embedder.dimension or embedder.max_model_len is None:
            embedder._live_backend()  # the files do not tell: the engine (or server) must
        else:
            embedder._deferred = True
        return embedder

    def _plan(self, config: EmbedderConfig) -> None:
        """Everything known without the engine: profile, tokenizer, prompt tokens, sizes, cache."""
        self._model_profile = detect_profile(config.model, config.revision, config.profile)
        requested = self._model_profile.check_dimensions(config.dimensions, config.model)
        self.profile: ModelProfile = self._model_profile
        self.tokenizer: PreTrainedTokenizerBase | None = load_tokenizer(config)
        self._prefix, self._suffix = (
            prompt_affixes(self.tokenizer, self._model_profile) if self.tokenizer is not None else ([], [])
        )
        self._backend: Backend | None = None
        self._deferred = False  # whether the planned sizes may have been used before the engine started
        self._on_start: Callable[[], None] | None = None
        self._backends: list[Backend] = []  # what the finalizer closes (it must not hold `self`)
        self._finalizer = weakref.finalize(self, _close_backends, self._backends)
        self._start_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._cache_stats = CacheStats()
        self._cache = _open_cache(config)
        self._cache_namespace = b""
        self.dimension: int = 0
        self.max_model_len: int | None = None
        self.max_input_tokens: int | None = None
        if requested is not None:
            self._size(self._model_profile.native_dimension, config.max_model_len)

    def _size(self, native: int | None, max_len: int | None) -> None:
        """Sets the output size and input limits from the engine's report (or the model's files)."""
        config, profile = self.config, self._model_profile
        if native is not None and native != profile.native_dimension:
            profile = replace(profile, native_dimension=native)
        requested = profile.check_dimensions(config.dimensions, config.model)
        self.profile = profile
        if requested is None:
            raise RuntimeError(f"the output size of {config.model} is unknown; pass dimensions=")
        self.dimension = requested
        self._engine_dimensions = None if requested == native else requested
        max_len = max_len or profile.max_length
        self.max_model_len = max_len
        special = len(self._prefix) + len(self._suffix)
        self.max_input_tokens = None if max_len is None else max_len - special
        if self.max_input_tokens is not None and self.max_input_tokens < 1:
            raise ValueError(f"max_model_len={max_len} leaves no room for text after the special tokens")
        if self._cache is not None:
            self._cache_namespace = namespace_key(self._vector_identity())

    def _start(self) -> Backend:
        """Starts the engine (once) and checks it against what was planned without it."""
        with self._start_lock:
            if self._backend is not None:
                return self._backend
            planned = (self.dimension, self.max_input_tokens) if self._deferred else None
            if self._on_start is not None:
                self._on_start()
            backend = _create_backend(self.config, self._model_profile)
            self._backends.append(backend)
            native = backend.native_dimension
            try:
                if native is not None and native < 1:
                    raise InvalidVectorError(
                        f"{self._backend_label()} returns vectors of length {native} for "
                        f"{self.config.model}; check that it serves an embedding model"
                    )
                self._size(native, backend.max_model_len)
                if planned is not None and planned != (self.dimension, self.max_input_tokens):
                    raise RuntimeError(
                        f"the engine of {self.config.model} reports (dimension, longest input) "
                        f"{(self.dimension, self.max_input_tokens)}, its files {planned}: pass dimensions= "
                        "and max_model_len= explicitly"
                    )
            except BaseException:
                self.close()
                raise
            self._backend = backend
            return backend

    # -- public API ---------------------------------------------------------------------------------

    def embed_documents(self, texts: Iterable[str]) -> Vectors:
        """Embeds documents (passages) with the model's document prompt.

        Args:
            texts: The documents; identical texts are embedded once.

        Returns:
            Array of shape `(len(texts), dimension)`, float32, unit L2 rows.

        Raises:
            TypeError: If `texts` is a bare string or holds a non-string (the message names the index).
            ValueError: If a text holds a lone surrogate, or is too long under `long_input="error"`.
            InvalidVectorError: If the backend returns a vector that is not finite, has the wrong length or
                is all zeros (the message names the text's index and the backend); nothing of that batch
                is cached.
        """
        return self._run(self._prompted(texts, "document", None, "embed_documents"))

    def embed_queries(self, texts: Iterable[str], instruction: str | None = None) -> Vectors:
        """Embeds search queries with the model's query prompt or instruction.

        Args:
            texts: The queries.
            instruction: Task instruction for instruction-tuned models (Qwen3-Embedding); defaults to the
                Embedder's `query_instruction`, then to the model's own query prompt.

        Returns:
            Array of shape `(len(texts), dimension)`, float32, unit L2 rows.

        Raises:
            TypeError: If `texts` is a bare string or holds a non-string.
            ValueError: As for `embed_documents`, or if the model takes no instruction.
        """
        return self._run(self._prompted(texts, "query", instruction, "embed_queries"))

    def embed_query(self, text: str, instruction: str | None = None) -> Vectors:
        """Embeds one search query; returns shape `(dimension,)`."""
        check_text(text, "text")
        row: Vectors = self.embed_queries([text], instruction)[0]
        return row

    async def aembed_documents(self, texts: Iterable[str]) -> Vectors:
        """Async `embed_documents`: concurrent calls share the engine's batching."""
        return await self._arun(self._prompted(texts, "document", None, "aembed_documents"))

    async def aembed_queries(self, texts: Iterable[str], instruction: str | None = None) -> Vectors:
        """Async `embed_queries`."""
        return await self._arun(self._prompted(texts, "query", instruction, "aembed_queries"))

    async def aembed_query(self, text: str, instruction: str | None = None) -> Vectors:
        """Async `embed_query`."""
        check_text(text, "text")
        row: Vectors = (await self.aembed_queries([text], instruction))[0]
        return row

    def format_query(self, text: str, instruction: str | None = None) -> str:
        """Returns the exact text the model sees for a query (prompt or instruction applied)."""
        return self.profile.format_query(text, instruction or self.config.query_instruction)

    def format_document(self, text: str) -> str:
        """Returns the exact text the model sees for a document."""
        return self.profile.format_document(text)

    def describe(self) -> dict[str, Any]:
        """Returns what decides the meaning of this Embedder's vectors (for collection manifests)."""
        return {
            "model": self.config.model,
            "revision": self.config.revision,
            "profile": self.profile.family,
            "pooling": self.profile.pooling,
            "dimensions": self.dimension,
            "normalized": True,
            "long_input": self.config.long_input,
            "vllm_embed_version": __version__,
        }

    @property
    def cache_stats(self) -> CacheStats:
        """Hits and misses of this Embedder's cache lookups (zero when no cache is configured)."""
        return self._cache_stats

    @property
    def cache(self) -> EmbeddingCache | None:
        """The persistent embedding cache, when one is configured."""
        return self._cache

    # -- internals ----------------------------------------------------------------------------------

    def _repr_fields(self) -> dict[str, object]:
        return {"model": self.config.model, "profile": self.profile.family, "dimension": self.dimension}

    def _prompted(self, texts: Iterable[str], kind: Kind, instruction: str | None, method: str) -> list[str]:
        items = text_list(texts, method)
        if instruction is not None:
            check_text(instruction, "instruction")
        if kind == "document":
            return [self.profile.format_document(text) for text in items]
        chosen = instruction if instruction is not None else self.config.query_instruction
        return [self.profile.format_query(text, chosen) for text in items]

    def _embed_document_tokens(self, texts: list[str], token_ids: Sequence[Sequence[int]]) -> Vectors:
        """Internal: `embed_documents(texts)` for chunks the ingest chunker has tokenised already.

        Args:
            texts: The documents, without prompt (they name the cache entries, as in `embed_documents`).
            token_ids: Each text's token ids with the document prompt and without special tokens, exactly
                what `tokenizer(format_document(text), add_special_tokens=False)` returns; the same prompts,
                cache keys and long-input policy apply as for `embed_documents`.
        """
        prompted = self._prompted(texts, "document", None, "embed_documents")
        if len(token_ids) != len(prompted):
            raise ValueError(f"{len(token_ids)} token id lists for {len(prompted)} texts")
        return self._run(prompted, token_ids)

    def _run(self, prompted: list[str], token_ids: Sequence[Sequence[int]] | None = None) -> Vectors:
        plan = _Plan(self, prompted, token_ids)
        backend = self._live_backend()
        for batch in plan.batches():
            plan.add(batch, backend.embed(batch.inputs, self._engine_dimensions))
        return plan.result()

    async def _arun(self, prompted: list[str], token_ids: Sequence[Sequence[int]] | None = None) -> Vectors:
        plan = _Plan(self, prompted, token_ids)
        backend = self._live_backend()
        for batch in plan.batches():
            plan.add(batch, await backend.aembed(batch.inputs, self._engine_dimensions))
        return plan.result()

    def _vector_identity(self) -> dict[str, Any]:
        """Everything that changes a vector for a given text (the cache namespace)."""
        config = self.config
        if config.backend == "openai":
            model = f"{config.base_url}|{config.model}"
        else:
            model = model_fingerprint(config.model, config.revision)
        profile = {key: value for key, value in asdict(self.profile).items() if key != "extras"}
        return {
            "format": 1,
            "model": model,
            "dtype": config.dtype,
            "profile": profile,
            "dimensions": self.dimension,
            "normalized": True,
            "long_input": config.long_input,
            "max_input_tokens": self.max_input_tokens,
            "affixes": [self._prefix, self._suffix],
        }

    def _count_cache(self, hits: int, misses: int) -> None:
        with self._stats_lock:
            stats = self._cache_stats
            self._cache_stats = CacheStats(stats.hits + hits, stats.misses + misses)

    def _live_backend(self) -> Backend:
        """The engine, started on first use."""
        self._check_open()
        return self._backend if self._backend is not None else self._start()

    def _prepare(
        self,
        texts: Sequence[str],
        rows: Sequence[int],
        first_index: npt.NDArray[np.intp],
        token_ids: Sequence[Sequence[int]] | None = None,
    ) -> _EngineInputs:
        """Turns unique texts (plan rows) into engine inputs under the long-input policy, shortest first.

        `token_ids`, when given, are the texts' token ids (without special tokens), so they are not
        tokenised again.
        """
        if self.tokenizer is None:  # a remote model with no local tokenizer: the server applies its limits
            owners = np.asarray(rows, dtype=np.intp)
            return _EngineInputs(list(texts), owners, np.ones(len(texts), dtype=np.float32))
        engine_takes_ids = self._live_backend().accepts_token_ids
        encoded: Sequence[Sequence[int]] = (
            token_ids
            if token_ids is not None
            else self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        )
        limit = self.max_input_tokens
        inputs: list[EngineInput] = []
        owner_list: list[int] = []
        weight_list: list[int] = []
        for position, ids in enumerate(encoded):
            row = rows[position]
            windows = token_windows(
                ids,
                limit,
                self.config.long_input,
                f"texts[{first_index[row]}]",
                self.config.model,
                (" (with its prompt)", " (weighted mean of windows)"),
            )
            for window in windows:
                owner_list.append(row)
                weight_list.append(max(len(window), 1))
                if not engine_takes_ids:
                    # A text engine gets text back: the original when it fits, else the decoded window.
                    whole = len(windows) == 1 and window is ids
                    inputs.append(texts[position] if whole else str(self.tokenizer.decode(list(window))))
                    continue
                tokens = [*self._prefix, *window, *self._suffix]
                inputs.append(tokens or [self._fallback_token()])
        order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]))
        return _EngineInputs(
            [inputs[i] for i in order],
            np.asarray([owner_list[i] for i in order], dtype=np.intp),
            np.asarray([weight_list[i] for i in order], dtype=np.float32),
        )

    def _fallback_token(self) -> int:
        """A token to stand for an empty text with a tokenizer that adds no special tokens."""
        assert self.tokenizer is not None
        for candidate in (
            self.tokenizer.eos_token_id,
            self.tokenizer.pad_token_id,
            self.tokenizer.unk_token_id,
        ):
            if isinstance(candidate, int):
                return candidate
        return 0
