"""The exceptions vllm-embed raises.

Every one derives from `VllmEmbedError` and, where it fits, from the builtin a caller would already catch:
`ValueError` for bad input, `RuntimeError` for a failing service.
"""

from __future__ import annotations


class VllmEmbedError(Exception):
    """Base class of every error vllm-embed raises on purpose; its message says what to do next."""


class SettingsError(VllmEmbedError, ValueError):
    """A setting is unknown (the message suggests the closest name) or has a value the model cannot honour."""


class ModelNotFoundError(VllmEmbedError, ValueError):
    """The model argument names no usable model.

    A path that does not exist, a directory without a model config, or a hub id absent from the local cache
    while offline.
    """


class EngineStartError(VllmEmbedError, RuntimeError):
    """The vLLM engine did not start; the message names the log file holding its output."""


class InvalidVectorError(VllmEmbedError, ValueError):
    """A backend returned a vector that is not finite, has the wrong length, or has zero norm.

    Nothing of the batch that contained it is returned, cached or stored.
    """


class CacheError(VllmEmbedError, RuntimeError):
    """The embedding cache file cannot be used (corrupt, not a vllm-embed cache, unreadable or read-only)."""


class ManifestError(VllmEmbedError, ValueError):
    """A collection's stored manifest is damaged (not valid JSON, a missing or mistyped field)."""


class UnmanagedCollectionError(ManifestError):
    """The collection exists but vllm-embed did not create it (no manifest): adopt it, or use another."""


class StoreBusyError(VllmEmbedError, RuntimeError):
    """An embedded store (a Qdrant local path, a Milvus Lite file) is open in another process."""


class InputFileError(VllmEmbedError, ValueError):
    """An input file cannot be read as documents (malformed CSV or JSONL, bad encoding, too large a document).

    The message names the file and the physical line.
    """


class DuplicateDocumentError(VllmEmbedError, ValueError):
    """The same document id occurs twice in one ingest run."""


class StorageSettingsError(VllmEmbedError, ValueError):
    """A storage setting given to a sink is invalid, or the store cannot apply it."""


class FusionSettingsError(VllmEmbedError, ValueError):
    """A hybrid-search fusion setting is unknown or out of range."""
