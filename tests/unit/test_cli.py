"""The `vllm-embed` CLI: user mistakes give one-line errors before any engine starts (no engine here; the
runs on a real engine are in tests/integration/test_cli.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import FakeClosableEmbedder, no_engine, run, write_corpus
from ingest_fixtures import FakeHashEmbedder, open_sink

from vllm_embed import cli
from vllm_embed.ingest import ingest


@pytest.fixture
def corpus_file(tmp_path: Path) -> Path:
    return write_corpus(tmp_path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["ingest", "missing.jsonl", "--model", "m", "--collection", "c", "--qdrant", "{tmp}/q"],
            "no such file",
        ),
        (
            ["ingest", "{corpus}", "--model", "m", "--collection", "c"],
            "exactly one of --qdrant, --qdrant-edge or --milvus",
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
                "--milvus",
                "{tmp}/m.db",
            ],
            "exactly one of --qdrant, --qdrant-edge or --milvus",
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
        (
            ["ingest", "x.jsonl", "-m", "m", "-c", "c", "--qdrant", "q", "--long-input", "x"],
            "'x' is not one of 'chunk', 'truncate', 'error'",
        ),
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
    assert code == 1 and "model: collection has 'fake-model', this run has 'real-model'" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("./models/no-such-model", "model path ./models/no-such-model does not exist; check the path"),
        ("{tmp}", "is not a model directory: it holds no config.json"),
    ],
)
def test_a_wrong_model_path_is_named_as_such_even_against_an_existing_collection(
    model: str, message: str, tmp_path, corpus_file, monkeypatch
) -> None:
    with open_sink("milvus", tmp_path) as sink:
        ingest(["x"], embedder=FakeHashEmbedder(), sink=sink, progress=False)
    monkeypatch.setattr(cli, "make_embedder", no_engine)
    target = ["-c", "docs", "--milvus", str(tmp_path / "milvus.db")]
    for command in (["ingest", str(corpus_file)], ["search", "q"]):
        code, _, err = run(*command, "-m", model.format(tmp=tmp_path), *target)
        assert code == 1 and err.startswith("error: ") and message in err, err
        assert len(err.strip().splitlines()) == 1 and "mismatch" not in err and "collection has" not in err


def test_a_hub_id_offline_is_one_line_before_the_engine_starts(tmp_path, corpus_file, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    code, _, err = run(
        "ingest", str(corpus_file), "-m", "org/absent", "-c", "docs", "--qdrant", str(tmp_path / "q")
    )
    assert code == 1
    assert err.splitlines() == [
        "error: org/absent is not in the local Hugging Face cache and HF_HUB_OFFLINE is set: download it "
        "once online (hf download org/absent), unset HF_HUB_OFFLINE, or pass a local directory"
    ]


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
    assert code == 1 and "layout: collection has 'llama-index', this run has 'langchain'" in err
    assert len(err.strip().splitlines()) == 1


def test_search_text_output_escapes_terminal_control_characters(tmp_path: Path, monkeypatch) -> None:
    from cli_helpers import FakeEngine

    hostile = {
        "id": "doc\x1b]0;pwned\x07",
        "text": "tea \x1b[2J\x1b[H cleared \x9b31m red \x7f",
        "tag": "\x1b[31m\x9b",
    }
    corpus = tmp_path / "hostile.jsonl"
    corpus.write_text(json.dumps(hostile) + "\n")
    monkeypatch.setattr(cli, "make_embedder", FakeEngine())
    store = ["-c", "docs", "--qdrant", str(tmp_path / "q")]
    assert run("ingest", str(corpus), "-m", "fake-model", *store)[0] == 0

    code, out, err = run("search", "tea", *store)
    assert code == 0, err
    assert not any(ch in out for ch in "\x1b\x07\x9b\x7f")
    assert "doc\\x1b]0;pwned\\x07" in out and "tea \\x1b[2J\\x1b[H cleared \\x9b31m red \\x7f" in out
    assert "\\x9b" in out.splitlines()[-1]  # the metadata line too
    code, out, _ = run("search", "tea", *store, "--json")
    assert json.loads(out)[0]["doc_id"] == hostile["id"]  # JSON keeps the stored values as they are


def test_a_filter_value_nested_thousands_deep_is_a_plain_string_not_a_recursion_error() -> None:
    from vllm_embed.cli.commands import _parse_filters

    deep = "[" * 100_000 + "]" * 100_000
    assert _parse_filters([f"k={deep}", "n=3"]) == {"k": deep, "n": 3}


class FakeUnstartedEmbedder(FakeClosableEmbedder):
    """A fake whose "engine" starts on its first embedding call, as `Embedder._unstarted` does."""

    def __init__(self, model: str, on_start) -> None:  # type: ignore[no-untyped-def]
        super().__init__(model=model)
        self._on_start = on_start

    @classmethod
    def _unstarted(cls, config, on_start=None):  # type: ignore[no-untyped-def]
        return cls(config.model, on_start)

    def embed_documents(self, texts):  # type: ignore[no-untyped-def]
        if self._on_start is not None:
            self._on_start, start = None, self._on_start
            start()
        return super().embed_documents(texts)


@pytest.mark.parametrize("quiet", [False, True])
def test_the_cli_says_that_the_engine_starts_when_it_starts_unless_quiet(
    quiet, tmp_path, corpus_file, monkeypatch, minilm_path
):  # type: ignore[no-untyped-def]
    monkeypatch.setattr("vllm_embed.embedder.Embedder", FakeUnstartedEmbedder)
    flags = ["--quiet"] if quiet else []
    command = [*flags, "ingest", str(corpus_file), "-m", minilm_path, "-c", "docs"]
    command += ["--qdrant", str(tmp_path / "q"), "--no-progress"]
    code, _, err = run(*command)
    assert code == 0, err
    assert err.splitlines() == ([] if quiet else [f"starting the vLLM engine for {minilm_path}…"])
    code, _, err = run(*command)  # everything is stored: no engine, no line
    assert code == 0, err
    assert err.splitlines() == []


@pytest.mark.parametrize(
    ("rerank", "maxsim", "shown"),
    [
        (None, None, "0.500  d #0"),
        (0.9, None, "0.900 (first 0.500)"),
        (None, 7.25, "7.250 (first 0.500)"),
        (0.9, 7.25, "0.900 (maxsim 7.250, first 0.500)"),
    ],
)
def test_hits_show_the_score_that_ordered_them_first(rerank, maxsim, shown) -> None:
    from rich.console import Console

    from vllm_embed.cli.output import print_hits
    from vllm_embed.sinks import Hit

    console = Console(record=True, width=200)
    print_hits([Hit("p", "d", 0, 0.5, "text", {}, rerank_score=rerank, maxsim_score=maxsim)], console)
    assert shown in console.export_text()
