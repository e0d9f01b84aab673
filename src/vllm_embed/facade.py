"""What the engine facades share: settings, tokenizer, engine lifetime, input checks.

The facades: `Embedder`, `Reranker` and the token-level `SparseEmbedder` and `MultiVectorEmbedder`.

A facade is built from keyword settings or a ready config, loads the model's tokenizer (a remote model may
have none locally), owns a backend that a `weakref.finalize` closes, and is a context manager. The checks of
the texts a caller passes live here once, so every facade refuses a bare string or a lone surrogate alike.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Self, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

from vllm_embed._utils import batched
from vllm_embed.config import (
    EmbedderConfig,
    RerankerConfig,
    TokenEmbedderSettings,
)
from vllm_embed.errors import SettingsError
from vllm_embed.model_source import check_model_source

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

ConfigT = TypeVar("ConfigT", bound=EmbedderConfig | RerankerConfig | TokenEmbedderSettings)


def load_tokenizer(
    config: EmbedderConfig | RerankerConfig | TokenEmbedderSettings,
) -> PreTrainedTokenizerBase | None:
    """Loads the model's tokenizer; a remote model whose tokenizer is not available locally gets `None`."""
    from transformers import AutoTokenizer

    try:
        tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(
            config.model, revision=config.revision, trust_remote_code=config.trust_remote_code
        )
    except (OSError, ValueError):
        if config.backend == "vllm":
            raise
        logger.info("no local tokenizer for %s: the server applies its own length limits", config.model)
        return None
    # Long texts are tokenised whole on purpose (then chunked or truncated): silence the length warning.
    tokenizer.model_max_length = 1 << 62
    return tokenizer


def special_affixes(tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], list[int]]:
    """Returns the token ids the tokenizer itself adds before and after a text (e.g. `[CLS]`/`[SEP]`)."""
    bare = tokenizer("hello world", add_special_tokens=False)["input_ids"]
    full = tokenizer("hello world", add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return list(full[:start]), list(full[start + len(bare) :])
    return [], []


def token_windows(
    ids: Sequence[int],
    limit: int | None,
    policy: str,
    where: str,
    model: str,
    notes: tuple[str, str] = ("", ""),
) -> list[Sequence[int]]:
    """Applies a long-input policy to one text's token ids.

    Returns `[ids]` itself when it fits, else its first `limit` tokens (`"truncate"`) or consecutive windows
    of `limit` (`"chunk"`).

    Raises:
        ValueError: Under `"error"`, naming the text (`where`), its length and the model's limit; `notes` go
            after the length and after the chunk policy's name.
    """
    if limit is None or len(ids) <= limit:
        return [ids]
    if policy == "error":
        raise ValueError(
            f"{where} is {len(ids)} tokens long{notes[0]} but {model} accepts {limit}; shorten or split it, "
            f"or pass long_input='chunk'{notes[1]} or long_input='truncate'"
        )
    if policy == "truncate":
        return [ids[:limit]]
    return list(batched(ids, limit))


def text_list(
    texts: Iterable[str], method: str, *, name: str = "texts", noun: str = "strings", call: str = "[text]"
) -> list[str]:
    """Validates a caller's texts: a list of proper `str`, encodable as UTF-8.

    Args:
        texts: What the caller passed.
        method: The public method called (named in errors).
        name: The parameter's name (errors name `name[index]`).
        noun: What the list holds, in errors ("a list of strings").
        call: The method's arguments with the value wrapped in a list, in the hint for a bare string.

    Raises:
        TypeError: If `texts` is a bare string, not iterable, or holds a non-string.
        ValueError: If a text holds a lone surrogate.
    """
    if isinstance(texts, str | bytes):
        raise TypeError(
            f"{method}() expects a list of {noun} but got a single {type(texts).__name__}; "
            f"wrap it in a list: {method}({call})"
        )
    if not isinstance(texts, Iterable):
        raise TypeError(f"{method}() expects a list of {noun}, got {type(texts).__name__}")
    items = list(texts)
    for index, text in enumerate(items):
        check_text(text, f"{name}[{index}]")
    return items


def check_text(text: object, where: str) -> None:
    """Refuses a non-string or a string with a lone surrogate; `where` names it in the error."""
    if not isinstance(text, str):
        raise TypeError(f"{where} is {type(text).__name__}, expected str (convert or drop it)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"{where} contains a lone surrogate ({text[exc.start]!r} at position {exc.start}), which is not "
            "valid Unicode; clean it first, e.g. text.encode('utf-8', 'replace').decode('utf-8')"
        ) from None


class EngineFacade(Generic[ConfigT]):
    """Base of the engine facades: the settings, the engine's lifetime, `close()` and the context manager.

    A subclass names its settings model (`_config_type`) and an example model for the error without one,
    calls `super().__init__` first, and sets `_finalizer` to close its backend once it has one.

    Raises:
        ValueError: If neither or both of a model (with keyword settings) and `config` are given.
    """

    _config_type: ClassVar[type[EmbedderConfig] | type[RerankerConfig] | type[TokenEmbedderSettings]]
    _example_model: ClassVar[str]

    _finalizer: weakref.finalize[Any, Any]

    def __init__(self, model: str | None, config: ConfigT | None, settings: dict[str, Any]) -> None:
        kind, settings_type = type(self).__name__, self._config_type.__name__
        if config is None:
            if model is None:
                raise SettingsError(f"{kind} needs a model: {kind}(model={self._example_model!r})")
            config = cast(ConfigT, self._config_type(model=model, **settings))
        elif model is not None or settings:
            raise SettingsError(f"pass either config={settings_type}(...) or keyword settings, not both")
        self.config: ConfigT = config
        if config.backend == "vllm":
            check_model_source(config.model, config.revision)

    @property
    def closed(self) -> bool:
        """Whether `close()` was called."""
        return not self._finalizer.alive

    def close(self) -> None:
        """Releases the engine; the last facade using it shuts it and its worker processes down."""
        self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = ", closed" if self.closed else ""
        fields = "".join(f"{name}={value!r}, " for name, value in self._repr_fields().items())
        return f"{type(self).__name__}({fields}backend={self.config.backend!r}{state})"

    def _repr_fields(self) -> dict[str, object]:
        """What `repr` shows before the backend."""
        return {"model": self.config.model}

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError(f"{self!r} is closed; create a new {type(self).__name__}")

    def _backend_label(self) -> str:
        """Names the backend in error messages: the engine, or the server's URL without credentials."""
        if self.config.backend == "vllm":
            return "vllm (in-process)"
        url = urlsplit(self.config.base_url or "")
        host = url.hostname or ""
        if ":" in host:  # an IPv6 address
            host = f"[{host}]"
        if url.port is not None:
            host = f"{host}:{url.port}"
        return f"the server at {urlunsplit(url._replace(netloc=host))}"
