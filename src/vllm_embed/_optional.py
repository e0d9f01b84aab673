"""Imports of optional dependencies, with errors that name the exact install command."""

from __future__ import annotations

import importlib
from types import ModuleType

_INSTALL_HINTS = {
    "vllm": (
        'pip install "vllm-embed[cpu]" --extra-index-url https://download.pytorch.org/whl/cpu'
        '  (CPU machines), or  pip install "vllm-embed[gpu]"  (CUDA GPUs)'
    ),
    "qdrant_client": 'pip install "vllm-embed[qdrant]"',
    "pymilvus": 'pip install "vllm-embed[milvus]"',
    "pyarrow": 'pip install "vllm-embed[parquet]"',
    "ray": 'pip install "vllm-embed[ray]"',
}


class MissingDependencyError(ImportError):
    """An optional dependency needed for the requested feature is not installed."""


def require(module: str, feature: str) -> ModuleType:
    """Imports `module`, or raises an error that says what to install.

    Args:
        module: Importable module name, e.g. `"qdrant_client"`.
        feature: What the caller was doing, for the message (e.g. `"QdrantSink"`).

    Returns:
        The imported module.

    Raises:
        MissingDependencyError: If the module cannot be imported.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".", 1)[0]
        hint = _INSTALL_HINTS.get(top, f"pip install {top}")
        raise MissingDependencyError(
            f"{feature} needs the `{top}` package, which is not installed or failed to import "
            f"({exc}). Install it with:  {hint}"
        ) from exc
