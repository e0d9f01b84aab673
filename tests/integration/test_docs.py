"""The documentation runs as written: every Python block of the README, of the docs site and of the adapter
packages' READMEs, the README's shell quick start, and `examples/quickstart.py`.

Blocks are found and run by Sybil, in order, one namespace per Markdown file (with `__name__ == "__main__"`,
so a block's `if __name__ == "__main__":` body runs), in a fresh working directory per file. They embed with
the packaged all-MiniLM-L6-v2 at default settings, as the docs tell a user to; the `doc_engine` fixture holds
an Embedder of the same settings open, so every block shares its one engine (Embedders of identical settings
in one process share an engine). A block that needs what a test machine lacks (a server, a GPU, a model from
the hub) is marked in the Markdown with `<!-- skip: next "reason" -->` and reported as skipped with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import runpy
import subprocess
import sys
import unittest
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sybil import Document, Example, Sybil
from sybil.evaluators.python import PythonEvaluator
from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser

from vllm_embed import Embedder

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOC_FILES = [
    README,
    *sorted((ROOT / "docs").rglob("*.md")),
    *sorted((ROOT / "integrations").glob("*/README.md")),
]
SYBIL = Sybil(parsers=[PythonCodeBlockParser(), SkipParser()])


def _is_python(example: Example) -> bool:
    return isinstance(example.region.evaluator, PythonEvaluator)


def _python_blocks() -> list[Any]:
    params = []
    for path in DOC_FILES:
        for index, example in enumerate(SYBIL.parse(path)):
            if _is_python(example):
                relative = path.relative_to(ROOT).as_posix()
                params.append(pytest.param(relative, index, id=f"{relative}:{example.line}"))
    return params


@dataclass
class _DocumentRun:
    """One Markdown file's examples, evaluated in order in one namespace and one working directory."""

    document: Document
    workdir: Path
    examples: list[Example] = field(init=False)
    evaluated: int = 0

    def __post_init__(self) -> None:
        self.examples = list(self.document)
        self.document.namespace["__name__"] = "__main__"

    def run_through(self, index: int) -> None:
        """Evaluates the examples up to `index`: earlier ones first if this worker has not run them."""
        while self.evaluated <= index:
            example = self.examples[self.evaluated]
            self.evaluated += 1
            if self.evaluated - 1 == index:
                try:
                    example.evaluate()
                except unittest.SkipTest as skip:  # a block marked `<!-- skip: next "reason" -->`
                    pytest.skip(f"{Path(example.path).relative_to(ROOT)}:{example.line}: {skip}")
            else:
                with contextlib.suppress(Exception):
                    example.evaluate()  # its own test reports it

    def close(self) -> None:
        """Releases what the blocks left open (Embedders, sinks, adapters) without waiting for exit."""
        for value in list(self.document.namespace.values()):
            module = type(value).__module__
            if module.startswith(("vllm_embed", "langchain_vllm_embed", "llama_index")) and callable(
                getattr(value, "close", None)
            ):
                with contextlib.suppress(Exception):
                    value.close()


@pytest.fixture(scope="module")
def doc_engine(default_minilm_embedder: Embedder) -> Embedder:
    """The engine every documented `Embedder(model=<packaged MiniLM>)` shares (default settings)."""
    return default_minilm_embedder


@pytest.fixture(scope="module")
def document_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, _DocumentRun]]:
    runs: dict[str, _DocumentRun] = {}
    yield runs
    for run in runs.values():
        run.close()


@pytest.mark.parametrize(("doc", "index"), _python_blocks())
def test_python_block_runs(
    doc: str,
    index: int,
    doc_engine: Embedder,
    document_runs: dict[str, _DocumentRun],
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if doc not in document_runs:
        workdir = tmp_path_factory.mktemp(re.sub(r"\W", "-", doc))
        document_runs[doc] = _DocumentRun(SYBIL.parse(ROOT / doc), workdir)
    run = document_runs[doc]
    monkeypatch.chdir(run.workdir)
    run.run_through(index)


def test_every_adapter_example_is_a_whole_script() -> None:
    """Each adapter README example states its imports and its install line, and guards its engine start."""
    for readme in sorted((ROOT / "integrations").glob("*/README.md")):
        text = readme.read_text()
        examples = [e for e in SYBIL.parse(readme) if _is_python(e)]
        assert examples, readme
        assert "pip install" in text, readme
        for example in examples:
            code = example.parsed
            skipped = "<!-- skip: next" in text[: example.start].rsplit("```", 1)[-1]
            assert skipped or 'if __name__ == "__main__":' in code, f"{readme}:{example.line}"
            assert code.lstrip().startswith(("import ", "from ", "# pip install")), f"{readme}:{example.line}"


def _shell_quick_start() -> str:
    """The README's shell quick start: the bash block that ingests and then searches."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    (block,) = [b for b in blocks if "vllm-embed ingest" in b and "vllm-embed search" in b]
    return block


def test_readme_shell_quick_start(
    doc_engine: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's shell lines run in bash as written; each `vllm-embed` call is recorded there and then run
    in-process (the same typer app the console script calls), so it shares the module's engine."""
    from typer.testing import CliRunner

    from vllm_embed import cli

    calls = tmp_path / "calls.jsonl"
    record = (  # a shell function that writes its arguments as one JSON line
        'vllm-embed() { python -c \'import json, sys; print(json.dumps(sys.argv[1:]))\' "$@" >> "$CALLS"; }'
    )
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, "PATH": path, "CALLS": str(calls)}
    script = f"set -euo pipefail\n{record}\n{_shell_quick_start()}"
    subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, check=True)
    commands = [json.loads(line) for line in calls.read_text().splitlines()]
    assert [c[0] for c in commands] == ["ingest", "search"]

    monkeypatch.chdir(tmp_path)
    outputs = []
    for argv in commands:
        result = CliRunner().invoke(cli.app, argv)
        assert result.exit_code == 0, result.output
        outputs.append(result.stdout)
    assert (tmp_path / "qdrant-edge" / "docs").is_dir()
    ranked = re.findall(r"^(\d+)\. \S+\s+(\S+) #\d+$", outputs[1], flags=re.M)
    assert ranked == [("1", "bread")], outputs[1]  # --top-k 1: the sourdough document, not the vLLM one


def test_quickstart_example_runs_offline_as_written(
    doc_engine: Embedder, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    script = ROOT / "examples" / "quickstart.py"
    monkeypatch.setattr(sys, "argv", [str(script)])
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    match = re.search(r"Q: How do I bake bread\?\n\s+1\. [\d.]+\s+(.*)", out)
    assert match is not None, out
    assert "sourdough" in match.group(1)
