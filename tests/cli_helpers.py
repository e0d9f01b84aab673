"""Helpers of the CLI tests: running `vllm-embed` in-process, a small corpus, and engine stand-ins."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ingest_fixtures import FakeHashEmbedder
from typer.testing import CliRunner

from vllm_embed import cli

runner = CliRunner()

CORPUS_ROWS = [
    {"id": "tea", "text": "Green tea is made from unoxidised leaves of Camellia sinensis.", "lang": "en"},
    {"id": "rust", "text": "Rust's borrow checker enforces memory safety at compile time.", "lang": "en"},
    {
        "id": "alps",
        "text": "Les Alpes sont la plus haute chaîne de montagnes d'Europe.",
        "lang": 'fr "quoted"',
    },
]


def write_corpus(directory: Path) -> Path:
    """Writes the three-document JSONL corpus and returns its path."""
    path = directory / "corpus.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in CORPUS_ROWS))
    return path


def run(*args: str, **env: str) -> tuple[int, str, str]:
    """Runs `vllm-embed args…` in-process; returns (exit code, stdout, stderr)."""
    result = runner.invoke(cli.app, list(args), env=env or None)
    return result.exit_code, result.stdout, result.stderr


def no_engine(config: Any) -> Any:
    raise AssertionError("the engine must not start for a user mistake")


class FakeEngine:
    """Stands in for `cli.make_embedder`: records each config and returns a `FakeHashEmbedder` for it."""

    def __init__(self) -> None:
        self.configs: list[Any] = []

    def __call__(self, config: Any) -> FakeClosableEmbedder:
        self.configs.append(config)
        return FakeClosableEmbedder(model=config.model)


class FakeClosableEmbedder(FakeHashEmbedder):
    """A `FakeHashEmbedder` the CLI can close."""

    def close(self) -> None:
        pass


class SharedEngine:
    """Hands the session's engine to the CLI; the CLI's close() must not shut it down."""

    def __init__(self, embedder: Any, expected_model: str) -> None:
        self._embedder, self._expected_model = embedder, expected_model
        self.configs: list[Any] = []

    def __call__(self, config: Any) -> SharedEngine:
        assert config.model == self._expected_model
        self.configs.append(config)
        return self

    def __getattr__(self, name: str) -> Any:
        return getattr(self._embedder, name)

    def close(self) -> None:
        pass
