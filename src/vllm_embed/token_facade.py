"""What the token-level embedders (`SparseEmbedder`, `MultiVectorEmbedder`) share.

Both run one of the model's own vLLM poolers on token ids they build themselves (so they know which token
each output row belongs to), deduplicate texts, apply the long-input policy by token windows, and fold each
text's window outputs into one result. A subclass names the architectures it serves and the task each one
runs, and turns a text's window outputs into its result.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar

import numpy as np
import numpy.typing as npt

from vllm_embed import facade
from vllm_embed._version import __version__
from vllm_embed.backends.base import PoolingBackend, PoolingTaskName
from vllm_embed.config import TokenEmbedderSettings
from vllm_embed.errors import InvalidVectorError, SettingsError
from vllm_embed.profiles import read_model_file

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

Kind = Literal["document", "query"]
_Result = TypeVar("_Result")
ConfigT = TypeVar("ConfigT", bound=TokenEmbedderSettings)


def _close(backends: list[PoolingBackend]) -> None:
    for backend in backends:
        backend.close()


def _architecture(model: str, files: dict[str, Any], engine_kwargs: dict[str, Any]) -> str:
    """The vLLM architecture the model runs as: `hf_overrides` first, then `config.json`.

    BGE-M3's `config.json` names `XLMRobertaModel`; vLLM serves its sparse and ColBERT heads as
    `BgeM3EmbeddingModel`, which a model named like `BAAI/bge-m3` gets without asking.
    """
    overrides = engine_kwargs.get("hf_overrides") or {}
    named = overrides.get("architectures") or files.get("architectures") or ["?"]
    if named[0] == "XLMRobertaModel" and "bge-m3" in model.lower():
        return "BgeM3EmbeddingModel"
    return str(named[0])


def check_in_process(config: TokenEmbedderSettings, kind: str) -> None:
    """Refuses a remote backend for token-level embedder `kind` (checked again by the adapters up front).

    Raises:
        SettingsError: If `config.backend` is not `"vllm"`.
    """
    if config.backend != "vllm":
        raise SettingsError(
            f"{kind} runs in-process only (backend='vllm'); a remote server's /pooling output for "
            f"these models is not supported yet: use {kind}(model=...) without backend='openai'"
        )


@dataclass
class Window:
    """One engine input: the token ids of (part of) a text, special tokens included, and what came back."""

    ids: list[int]
    output: npt.NDArray[np.float32] | None = None


class TokenEmbedderFacade(facade.EngineFacade[ConfigT], Generic[ConfigT, _Result]):
    """Base of `SparseEmbedder` and `MultiVectorEmbedder`: settings, engine, inputs, windows, output checks.

    Raises:
        SettingsError: If the model is not one the subclass serves, or `backend="openai"` is asked for;
            both before any engine starts.
    """

    _tasks: ClassVar[dict[str, PoolingTaskName]]
    """The architectures (`config.json`) served, and the vLLM pooling task each runs."""

    def __init__(self, model: str | None, config: ConfigT | None, settings: dict[str, Any]) -> None:
        super().__init__(model, config, settings)
        kind = type(self).__name__
        check_in_process(self.config, kind)
        files = read_model_file(self.config.model, "config.json", self.config.revision) or {}
        self.architecture: str = _architecture(self.config.model, files, self.config.engine_kwargs)
        task = self._tasks.get(self.architecture)
        if task is None:
            raise SettingsError(
                f"{kind} serves the architectures {', '.join(self._tasks)}; {self.config.model} is "
                f"{self.architecture} (for a dense model use Embedder)"
            )
        self._task: PoolingTaskName = task
        self._model_files = files
        tokenizer = facade.load_tokenizer(self.config)
        assert tokenizer is not None  # the in-process backend raises when it has none
        self.tokenizer: PreTrainedTokenizerBase = tokenizer
        self._prefix, self._suffix = facade.special_affixes(tokenizer)
        self._backends: list[PoolingBackend] = []
        self._finalizer = weakref.finalize(self, _close, self._backends)
        from vllm_embed.backends.vllm_local import VLLMLocalPooler

        backend = VLLMLocalPooler(self.config, task, self.architecture)
        self._backends.append(backend)
        self._backend: PoolingBackend = backend
        limit = backend.max_model_len
        self.max_input_tokens: int | None = (
            None if limit is None else limit - len(self._prefix) - len(self._suffix)
        )

    # -- what a subclass decides ------------------------------------------------------------------

    def _text_ids(self, texts: list[str], kind: Kind) -> list[list[int]]:
        """Each text's token ids without special tokens (markers a model ships go in here)."""
        ids: list[list[int]] = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        return ids

    def _fold(self, windows: list[Window], kind: Kind, index: int) -> _Result:
        """Turns a text's window outputs into its result; `index` is the caller's index of the text."""
        raise NotImplementedError

    # -- the shared run ---------------------------------------------------------------------------

    def _inputs(self, texts: Iterable[str], method: str) -> list[str]:
        self._check_open()
        return facade.text_list(texts, method)

    def _plan(self, items: list[str], kind: Kind) -> tuple[list[int], list[list[Window]]]:
        """Each caller text's position among the unique texts, and the windows of each unique text."""
        positions: dict[str, int] = {}
        inverse = [positions.setdefault(text, len(positions)) for text in items]
        unique = list(positions)
        first = {row: index for index, row in reversed(list(enumerate(inverse)))}
        limit = self.max_input_tokens
        plans: list[list[Window]] = []
        for row, ids in enumerate(self._text_ids(unique, kind)):
            pieces = facade.token_windows(
                ids, limit, self.config.long_input, f"texts[{first[row]}]", self.config.model
            )
            plans.append([Window([*self._prefix, *piece, *self._suffix]) for piece in pieces])
        return inverse, plans

    def _batches(self, plans: list[list[Window]]) -> Iterable[list[Window]]:
        windows = [window for plan in plans for window in plan]
        size = self.config.batch_size
        for start in range(0, len(windows), size):
            yield windows[start : start + size]

    def _store(self, batch: list[Window], outputs: Sequence[npt.NDArray[np.float32]]) -> None:
        if len(outputs) != len(batch):
            raise InvalidVectorError(
                f"{self._backend_label()} returned {len(outputs)} outputs for {len(batch)} inputs"
            )
        for window, output in zip(batch, outputs, strict=True):
            window.output = np.asarray(output, dtype=np.float32)

    def _run(self, items: list[str], kind: Kind) -> list[_Result]:
        inverse, plans = self._plan(items, kind)
        for batch in self._batches(plans):
            self._store(batch, self._backend.pool([w.ids for w in batch]))
        return self._assemble(inverse, plans, kind)

    async def _arun(self, items: list[str], kind: Kind) -> list[_Result]:
        inverse, plans = self._plan(items, kind)
        for batch in self._batches(plans):
            self._store(batch, await self._backend.apool([w.ids for w in batch]))
        return self._assemble(inverse, plans, kind)

    def _assemble(self, inverse: list[int], plans: list[list[Window]], kind: Kind) -> list[_Result]:
        first = {row: index for index, row in reversed(list(enumerate(inverse)))}
        folded = [self._fold(plan, kind, first[row]) for row, plan in enumerate(plans)]
        return [folded[row] for row in inverse]

    def _bad(self, index: int, problem: str) -> InvalidVectorError:
        return InvalidVectorError(
            f"{self._backend_label()} returned a bad output for texts[{index}]: it {problem}; nothing was "
            "returned. Check the model (a broken checkpoint, or a dtype that overflows such as float16)"
        )

    # -- public API -------------------------------------------------------------------------------

    def embed_documents(self, texts: Iterable[str]) -> list[_Result]:
        """Embeds documents (passages); identical texts are run once.

        Raises:
            TypeError: If `texts` is a bare string or holds a non-string (the message names the index).
            ValueError: If a text holds a lone surrogate, or is too long under `long_input="error"`.
            InvalidVectorError: If the engine's output for a text is not finite or empty.
        """
        return self._run(self._inputs(texts, "embed_documents"), "document")

    def embed_queries(self, texts: Iterable[str]) -> list[_Result]:
        """Embeds search queries (with the model's query marker, where it ships one)."""
        return self._run(self._inputs(texts, "embed_queries"), "query")

    def embed_query(self, text: str) -> _Result:
        """Embeds one search query."""
        facade.check_text(text, "text")
        return self.embed_queries([text])[0]

    async def aembed_documents(self, texts: Iterable[str]) -> list[_Result]:
        """Async `embed_documents`: concurrent calls share the engine's batching."""
        return await self._arun(self._inputs(texts, "aembed_documents"), "document")

    async def aembed_queries(self, texts: Iterable[str]) -> list[_Result]:
        """Async `embed_queries`."""
        return await self._arun(self._inputs(texts, "aembed_queries"), "query")

    async def aembed_query(self, text: str) -> _Result:
        """Async `embed_query`."""
        facade.check_text(text, "text")
        return (await self.aembed_queries([text]))[0]

    def describe(self) -> dict[str, Any]:
        """Returns what decides the meaning of this embedder's output (for collection manifests)."""
        return {
            "model": self.config.model,
            "revision": self.config.revision,
            "architecture": self.architecture,
            "task": self._task,
            "long_input": self.config.long_input,
            "vllm_embed_version": __version__,
        }

    def _repr_fields(self) -> dict[str, object]:
        return {"model": self.config.model, "architecture": self.architecture}
