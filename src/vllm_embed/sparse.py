"""BM25 sparse vectors computed client-side with Qdrant's own analyzer (`qdrant_edge.Bm25`).

Qdrant stores the term weights of each chunk in a sparse vector with the IDF modifier, so the server adds
the inverse document frequency at query time: the score of a point is BM25. The weights here are what
Qdrant's server-side BM25 inference produces (same tokenizer, stemmer, stop words and token hashing).

A collection records the analyzer settings and the qdrant-edge-py version; a query with another analyzer
would hash tokens differently and silently find nothing, so `BM25Encoder.from_manifest` refuses it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from vllm_embed._optional import require
from vllm_embed.errors import VllmEmbedError

BM25_PACKAGE = "qdrant-edge-py"
"""The distribution whose `qdrant_edge.Bm25` computes the term weights."""

_PROBE = (
    "Running runners ran; the QUICK brown foxes jumped over lazy dogs. zlib.crc32(data) returns "
    "an unsigned 32-bit checksum: don't, can't, e-mail, naïve café, 3.14, snake_case, CamelCase, "
    "https://example.com/path?q=1, über-größe, 東京, emoji 🚀."
)
"""A text touching tokenization, stemming, stop words, accents, numbers and non-Latin scripts."""


class SparseAnalyzerError(VllmEmbedError, ValueError):
    """The installed BM25 analyzer may tokenize differently from the one a collection was built with."""


@dataclass(frozen=True, slots=True)
class SparseVector:
    """A sparse vector: the non-zero dimensions and their values.

    Attributes:
        indices: Token hashes (unique, unsigned 32-bit).
        values: Weight of each token.
    """

    indices: list[int]
    values: list[float]


class BM25Settings(BaseModel):
    """The analyzer and BM25 parameters of a collection's sparse vectors (Qdrant's `Bm25Config` defaults)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    k: float = Field(default=1.2, ge=0)
    """Term-frequency saturation."""
    b: float = Field(default=0.75, ge=0, le=1)
    """Length normalisation (0 none, 1 full)."""
    avg_len: float = Field(default=256.0, gt=0)
    """Expected average chunk length in analyzer tokens."""
    language: str = "english"
    """Language of the stop words and the stemmer."""


class BM25Encoder:
    """Turns texts into BM25 sparse vectors with Qdrant's analyzer.

    Documents get saturated term-frequency weights; a query gets weight 1 for each distinct token, and the
    collection's IDF modifier supplies the rest of the BM25 score.

    Args:
        settings: Analyzer and BM25 parameters (Qdrant's defaults when `None`).

    Raises:
        MissingDependencyError: If qdrant-edge-py is not installed.
        ValueError: If Qdrant's analyzer rejects the settings (e.g. an unsupported language).
    """

    def __init__(self, settings: BM25Settings | None = None) -> None:
        self.settings = settings or BM25Settings()
        qdrant_edge = require("qdrant_edge", "BM25 sparse vectors (hybrid search)")
        config = qdrant_edge.Bm25Config(
            k=self.settings.k,
            b=self.settings.b,
            avg_len=self.settings.avg_len,
            language=self.settings.language,
        )
        self._model = qdrant_edge.Bm25(config)

    def embed_documents(self, texts: Sequence[str]) -> list[SparseVector]:
        """Returns the BM25 term weights of each text, as stored for a chunk."""
        return [_as_sparse(self._model.embed_document(text)) for text in texts]

    def embed_query(self, text: str) -> SparseVector:
        """Returns the query vector of `text`: weight 1 for each distinct token."""
        return _as_sparse(self._model.embed_query(text))

    def fingerprint(self) -> str:
        """Returns a digest of the vectors of a probe text, which changes when the analyzer's output does."""
        vectors = [self.embed_query(_PROBE), *self.embed_documents([_PROBE])]
        dumped = json.dumps([[v.indices, [round(x, 5) for x in v.values]] for v in vectors])
        return hashlib.sha256(dumped.encode()).hexdigest()[:16]

    def describe(self) -> dict[str, Any]:
        """Returns what a collection records about this encoder: the package, its version and the settings."""
        return {
            "encoder": BM25_PACKAGE,
            "version": _installed_version(),
            "fingerprint": self.fingerprint(),
            **self.settings.model_dump(),
        }

    @classmethod
    def from_manifest(cls, recorded: Mapping[str, Any], collection: str) -> BM25Encoder:
        """Returns the encoder a collection was built with, if the installed analyzer makes the same vectors.

        The same release is accepted, and so is a patch release of the same minor version that gives the
        same vectors on a probe text; anything else could tokenize differently and is refused.

        Raises:
            SparseAnalyzerError: Naming the recorded version and how to install it.
        """
        settings = BM25Settings.model_validate(
            {k: v for k, v in recorded.items() if k in BM25Settings.model_fields}
        )
        encoder = cls(settings)
        recorded_version = str(recorded.get("version", ""))
        installed = _installed_version()
        same_minor = recorded_version.split(".")[:2] == installed.split(".")[:2]
        if recorded_version != installed and not (
            same_minor and recorded.get("fingerprint") == encoder.fingerprint()
        ):
            raise SparseAnalyzerError(
                f"collection {collection!r} has BM25 vectors from {BM25_PACKAGE} {recorded_version}, "
                f"installed is {installed}, whose tokens may hash differently: "
                f'pip install "{BM25_PACKAGE}=={recorded_version}", or re-ingest into a new collection'
            )
        return encoder


TERM_TEXT_ANALYSIS = "qdrant-bm25-terms"
"""How a collection's BM25 text field is written when it holds `BM25Terms` text (recorded in its manifest)."""

_RAW_COUNTS_K = 1e9
"""With b=0 and a k this large, Qdrant's saturated term frequency tf·(k+1)/(tf+k) is tf itself."""


class BM25Terms:
    """Qdrant's BM25 analysis (tokenizer, lower-casing, English stop words, stemmer) written out as text.

    A store that computes BM25 itself from a text field (Milvus's BM25 Function) indexes this text instead of
    the chunk: each token Qdrant's analyzer keeps becomes one word (its 32-bit hash in base 36), repeated as
    often as it occurs, and a query becomes its distinct tokens. The store's plain `standard` analyzer then
    counts exactly the terms and frequencies Qdrant's BM25 counts, and still computes IDF and length
    normalisation server-side. This matters where the store's own analyzer cannot drop stop words or stem
    (Milvus Lite accepts `stop` and `stemmer` filters and ignores them): every "how", "do", "the" of a
    question would otherwise be a BM25 term.

    Args:
        settings: The analyzer's language (`k`, `b` and `avg_len` are the store's business here).
    """

    def __init__(self, settings: BM25Settings | None = None) -> None:
        language = (settings or BM25Settings()).language
        self.encoder = BM25Encoder(BM25Settings(k=_RAW_COUNTS_K, b=0.0, language=language))

    def document_text(self, text: str) -> str:
        """The words a store indexes for `text`: each analysed token as often as it occurs."""
        vector = self.encoder.embed_documents([text])[0]
        counts = zip(vector.indices, vector.values, strict=True)
        return " ".join(" ".join([_term_word(index)] * round(count)) for index, count in counts)

    def query_text(self, text: str) -> str:
        """The words a store searches for `text`: each distinct analysed token once ("" when none is left)."""
        return " ".join(_term_word(index) for index in self.encoder.embed_query(text).indices)

    def describe(self) -> dict[str, Any]:
        """What a collection records: the analysis, the package and version, the fingerprint, the language."""
        described = self.encoder.describe()
        return {
            "analysis": TERM_TEXT_ANALYSIS,
            **{key: described[key] for key in ("encoder", "version", "fingerprint", "language")},
        }

    @classmethod
    def from_manifest(cls, recorded: Mapping[str, Any], collection: str) -> BM25Terms:
        """The analysis a collection was built with, if the installed analyzer gives the same terms.

        Raises:
            SparseAnalyzerError: Naming the recorded version and how to install it.
        """
        terms = cls(BM25Settings(language=str(recorded.get("language", "english"))))
        expected = {**recorded, **terms.encoder.settings.model_dump(exclude={"language"})}
        terms.encoder = BM25Encoder.from_manifest(expected, collection)
        return terms


def _term_word(index: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    word = ""
    while True:
        index, digit = divmod(index, 36)
        word = digits[digit] + word
        if not index:
            return word


def _installed_version() -> str:
    return importlib.metadata.version(BM25_PACKAGE)


def _as_sparse(vector: Any) -> SparseVector:
    return SparseVector(indices=list(vector.indices), values=list(vector.values))
