"""The one way vllm-embed imports an optional dependency, with an error that names the exact install command.

Every optional import goes through `require`, so a missing package always reads the same: what needed it,
and the `pip install "vllm-embed[extra]"` that brings it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from vllm_embed.errors import VllmEmbedError

EXTRAS: dict[str, str] = {
    "qdrant_client": "qdrant",
    "qdrant_edge": "qdrant",
    "pymilvus": "milvus",
    "milvus_lite": "milvus",
    "pyarrow": "parquet",
    "ray": "ray",
    "matplotlib": "plot",
    "fastapi": "serve",
    "uvicorn": "serve",
    "prometheus_client": "serve",
}
"""Top-level module → the vllm-embed extra that installs it (vLLM has two extras: see `install_hint`)."""

_VLLM_HINT = (
    'pip install "vllm-embed[cpu]" --extra-index-url https://download.pytorch.org/whl/cpu'
    '  (CPU machines), or  pip install "vllm-embed[gpu]"  (CUDA GPUs)'
)


class MissingDependencyError(VllmEmbedError, ImportError):
    """An optional dependency needed for the requested feature is not installed."""


def install_hint(module: str) -> str:
    """Returns the command that installs `module` (a top-level or dotted module name)."""
    top = module.split(".", 1)[0]
    if top == "vllm":
        return _VLLM_HINT
    extra = EXTRAS.get(top)
    return f'pip install "vllm-embed[{extra}]"' if extra else f"pip install {top}"


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
        raise MissingDependencyError(
            f"{feature} needs the `{top}` package, which is not installed or failed to import "
            f"({exc}). Install it with:  {install_hint(module)}"
        ) from exc
