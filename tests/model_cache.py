"""Test models built once into a cache shared by sessions, the adapter packages' tests and the benchmarks.

vLLM's compile cache is keyed by a model's path, so a model rebuilt at the same stable path is not compiled
again. The root `tests/conftest.py` and the adapter packages' conftests (which cannot see it) both use this.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path


def cache_root() -> Path:
    """`VLLM_EMBED_TEST_CACHE`, or `~/.cache/vllm-embed-tests`."""
    return Path(os.environ.get("VLLM_EMBED_TEST_CACHE", Path.home() / ".cache" / "vllm-embed-tests"))


def built_once(name: str, build: Callable[[Path], Path], staging: Path) -> Path:
    """The model `name` in the cache, built by `build` into `staging` and copied there if it is missing."""
    target = cache_root() / name
    if not (target / "model.safetensors").is_file():
        built = build(staging / "model")
        cache_root().mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(built, target)
    return target


def sparse_fixture(kind: str, staging: Path) -> Path:
    """A `sparse_models` fixture model (`splade`, `colbert`, `bge_m3`), rebuilt when the builders change."""
    import sparse_models

    digest = hashlib.sha256(Path(sparse_models.__file__).read_bytes()).hexdigest()[:10]
    return built_once(f"{kind}-{digest}", getattr(sparse_models, f"build_{kind}"), staging)
