"""The `vllm-embed` CLI: user mistakes give one-line errors before any engine starts; ingest and search
run in-process on the session's engine (the subprocess runs are in test_ingest_crash.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ingest_fixtures import FakeHashEmbedder, open_sink
from typer.testing import CliRunner

from vllm_embed import cli
from vllm_embed.ingest import ingest

runner = CliRunner()


class SharedEngine:
    """Hands the session's engine to the CLI; the CLI's close() must not shut it down."""

    def __init__(self, embedder, expected_model: str) -> None:
        self._embedder, self._expected_model = embedder, expected_model
        self.configs: list = []

    def __call__(self, config):
        assert config.model == self._expected_model
        self.configs.append(config)
        return self

    def __getattr__(self, name):
        return getattr(self._embedder, name)

    def close(self) -> None:
        pass


def no_engine(config):
    raise AssertionError("the engine must not start for a user mistake")


def run(*args: str):
    result = runner.invoke(cli.app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def corpus_file(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.jsonl"
    rows = [
        {"id": "tea", "text": "Green tea is made from unoxidised leaves of Camellia sinensis.", "lang": "en"},
        {"id": "rust", "text": "Rust's borrow checker enforces memory safety at compile time.", "lang": "en"},
        {
            "id": "alps",
            "text": "Les Alpes sont la plus haute chaîne de montagnes d'Europe.",
            "lang": 'fr "quoted"',
        },
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["ingest", "missing.jsonl", "--model", "m", "--collection", "c", "--qdrant", "{tmp}/q"],
            "no such file",
        ),
        (["ingest", "{corpus}", "--model", "m", "--collection", "c"], "exactly one of --qdrant or --milvus"),
        (
            [
                "ingest",
                "{corpus}",
                "--model",
                "m",
                "-c",
                "c",
                "--qdrant",
                "{tmp}/q",
                "--milvus",
                "{tmp}/m.db",
            ],
            "exactly one of --qdrant or --milvus",
        ),
        (
            [
                "ingest",
                "{corpus}",
                "--model",
                "m",
                "-c",
                "c",
                "--qdrant",
                "{tmp}/q",
                "--chunk-tokens",
                "8",
                "--chunk-overlap",
                "8",
            ],
            "--chunk-overlap 8 must be below --chunk-tokens 8",
        ),
        (
            ["ingest", "{corpus}", "--model", "m", "-c", "c", "--qdrant", "{tmp}/q", "--text-field", "body"],
            "no 'body' field",
        ),
        (
            ["ingest", "{corpus}", "--model", "m", "-c", "c", "--qdrant", "{tmp}/q", "--long-input", "x"],
            "long_input",
        ),
        (["search", "q", "-c", "nothing", "--qdrant", "{tmp}/q"], "'nothing' does not exist"),
        (
            ["search", "q", "-c", "c", "--milvus", "{tmp}/m.db", "--filter", "novalue"],
            "--filter takes key=value",
        ),
    ],
)
def test_user_mistakes_exit_nonzero_with_one_line(args, message, tmp_path, corpus_file, monkeypatch) -> None:
    monkeypatch.setattr(cli, "make_embedder", no_engine)
    args = [a.format(tmp=tmp_path, corpus=corpus_file) for a in args]
    code, _, err = run(*args)
    assert code != 0
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ") and message in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["ingest", "x.jsonl", "-m", "m", "-c", "c", "--qdrant", "q", "--tensor-parallel-size", "0"],
            "greater than or equal to 1",
        ),
        (["search", "q", "--qdrant", "q"], "Missing option '--collection'"),
        (
            ["ingest", "x.jsonl", "-m", "m", "-c", "c", "--qdrant", "q", "--layout", "haystack"],
            "'haystack' is not one of 'vllm-embed', 'langchain', 'llama-index'",
        ),
        (["ingest", "x.jsonl", "--bogus"], "No such option: --bogus"),
    ],
)
def test_usage_errors_are_one_line_too(args, message, monkeypatch, capsys) -> None:
    monkeypatch.setattr(cli, "make_embedder", no_engine)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and message in err, err


def test_ingest_into_a_collection_of_another_model_is_refused_before_the_engine(
    tmp_path, corpus_file, monkeypatch
) -> None:
    with open_sink("milvus", tmp_path) as sink:
        ingest(["x"], embedder=FakeHashEmbedder(), sink=sink, progress=False)
    monkeypatch.setattr(cli, "make_embedder", no_engine)
    code, _, err = run(
        "ingest", str(corpus_file), "-m", "real-model", "-c", "docs", "--milvus", str(tmp_path / "milvus.db")
    )
    assert code == 1 and "embedded with model 'fake-model', not 'real-model'" in err
    assert len(err.strip().splitlines()) == 1


def test_ingest_with_another_layout_than_the_collection_is_refused_before_the_engine(
    tmp_path, corpus_file, monkeypatch
) -> None:
    with open_sink("qdrant", tmp_path, layout="llama-index") as sink:
        ingest(["x"], embedder=FakeHashEmbedder(), sink=sink, progress=False)
    monkeypatch.setattr(cli, "make_embedder", no_engine)
    target = str(tmp_path / "qdrant")
    code, _, err = run(
        "ingest",
        str(corpus_file),
        "-m",
        "fake-model",
        "-c",
        "docs",
        "--qdrant",
        target,
        "--layout",
        "langchain",
    )
    assert code == 1 and "has the 'llama-index' layout, not 'langchain'" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("store", ["--qdrant", "--milvus", "milvus-server"])
def test_ingest_then_search_without_model(
    store, tmp_path, corpus_file, monkeypatch, minilm_embedder, minilm_path, request
) -> None:
    if store == "milvus-server":
        store, target = "--milvus", request.getfixturevalue("milvus_server")
    else:
        target = str(tmp_path / ("q" if store == "--qdrant" else "m.db"))
    engine = SharedEngine(minilm_embedder, minilm_path)
    monkeypatch.setattr(cli, "make_embedder", engine)

    code, out, err = run(
        "ingest",
        str(corpus_file),
        "-m",
        minilm_path,
        "-c",
        "docs",
        store,
        target,
        "--dtype",
        "float32",
        "--no-progress",
    )
    assert code == 0, err
    assert "3 documents, 3 chunks: 3 embedded, 0 already stored, 3 written" in out
    assert engine.configs[-1].dtype == "float32"

    code, out, err = run(
        "search", "which language prevents memory bugs?", "-c", "docs", store, target, "--json", "-k", "2"
    )
    assert code == 0, err
    hits = json.loads(out)
    assert hits[0]["doc_id"] == "rust" and len(hits) == 2
    assert set(hits[0]) == {"id", "doc_id", "chunk_index", "score", "text", "metadata"}
    assert engine.configs[-1].dimensions == 384

    code, out, err = run("search", "mountains", "-c", "docs", store, target, "--filter", 'lang=fr "quoted"')
    assert code == 0, err
    assert "1. " in out and "alps #0" in out and "2. " not in out

    monkeypatch.setattr(cli, "make_embedder", no_engine)
    code, _, err = run("search", "q", "-c", "docs", store, target, "--model", "other/model")
    assert code == 1 and "embedded with model" in err and "not 'other/model'" in err
