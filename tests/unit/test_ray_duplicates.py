"""Repeated document ids and per-row splitters on the Ray path, without Ray or an engine.

The driver's duplicate passes run on a Fake dataset (a list of Arrow blocks with Ray Data's calls); the
files' path is the CLI's, which checks repeated ids before it joins Ray.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pytest
from cli_helpers import no_engine, run

from vllm_embed import cli
from vllm_embed.config import EmbedderConfig
from vllm_embed.errors import DuplicateDocumentError
from vllm_embed.ingest.duplicates import superseded_positions
from vllm_embed.ingest.loaders import load_path, load_paths
from vllm_embed.ray_data import blocks
from vllm_embed.ray_data.blocks import DocumentPlan, without_documents
from vllm_embed.ray_data.repeats import find_repeats, read_path, superseded_by_source
from vllm_embed.sinks import QdrantSink

ray = pytest.importorskip("ray")


class FakeDataset:
    """Ray Data's `map_batches` / `iter_batches` over a list of Arrow blocks, in this process.

    Records, for each `iter_batches`, whether the dataset's order was to be preserved.
    """

    def __init__(self, blocks: list[pa.Table], passes: list[bool] | None = None) -> None:
        self.blocks = blocks
        self.context = SimpleNamespace(execution_options=SimpleNamespace(preserve_order=False))
        self.passes = [] if passes is None else passes

    def map_batches(
        self, fn: Callable[..., pa.Table], *, fn_kwargs: dict[str, Any], batch_format: str
    ) -> FakeDataset:
        mapped = FakeDataset([fn(block, **fn_kwargs) for block in self.blocks], self.passes)
        mapped.context = self.context
        return mapped

    def iter_batches(self, *, batch_size: None, batch_format: str) -> Iterator[pa.Table]:
        self.passes.append(self.context.execution_options.preserve_order)
        yield from self.blocks


def _plan(**changes: Any) -> DocumentPlan:
    fields: dict[str, Any] = {
        "config": EmbedderConfig(model="fake-model"),
        "chunk_tokens": 64,
        "chunk_overlap": 0,
        "splitter": None,
        "text_column": "text",
        "id_column": "id",
        "metadata_columns": None,
        "max_document_bytes": None,
        "layout": "vllm-embed",
    }
    return DocumentPlan(**{**fields, **changes})


ROWS = [
    {"id": "a", "text": "first a", "n": 0},
    {"id": "b", "text": "only b", "n": 1},
    {"id": "c", "text": "first c", "n": 2},
    {"id": "a", "text": "second a", "n": 3},
    {"id": "d", "text": "only d", "n": 4},
    {"id": "c", "text": "second c", "n": 5},
    {"id": "a", "text": "third a", "n": 6},
]


def _dataset(rows: list[dict[str, Any]] = ROWS) -> FakeDataset:
    return FakeDataset(
        [pa.Table.from_pylist(rows[:2]), pa.Table.from_pylist(rows[2:5]), pa.Table.from_pylist(rows[5:])]
    )


def test_a_repeated_id_is_refused_with_both_positions_in_the_datasets_order() -> None:
    ds = _dataset()
    with pytest.raises(DuplicateDocumentError, match=r"'a' occurs twice .* positions 0 and 3"):
        find_repeats(ds, _plan(), "error")
    assert ds.passes == [False, True]  # the hashes in any order, then the repeated ids in order
    assert ds.context.execution_options.preserve_order is False  # the dataset's setting is restored


def test_the_last_version_of_each_repeated_id_replaces_the_others() -> None:
    plan = _plan()
    ds = _dataset()
    repeats = find_repeats(ds, plan, "last")
    assert repeats.doc_ids == {"a", "c"} and repeats.superseded == 3
    kept = [without_documents(block, plan, repeats.doc_ids) for block in ds.blocks]
    ingested = pa.concat_tables([*kept, repeats.last]).to_pylist()
    # What `ingest(on_duplicate="last")` keeps: every id once, in its last version.
    wanted = [r for i, r in enumerate(ROWS) if i not in superseded_positions(ROWS, "text", "id", "last")]
    assert sorted(ingested, key=lambda r: r["n"]) == wanted


def test_unique_ids_take_one_pass_and_equal_hashes_are_not_duplicates(monkeypatch) -> None:
    unique = [{"id": str(i), "text": f"text {i}"} for i in range(6)]
    ds = _dataset(unique)
    assert not find_repeats(ds, _plan(), "error").doc_ids
    assert ds.passes == [False]

    monkeypatch.setattr(blocks, "id_hash", lambda doc_id: 7)  # every id collides
    ds = _dataset(unique)
    assert not find_repeats(ds, _plan(), "error").doc_ids and ds.passes == [False, True]


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_repeated_id_across_files_or_a_bad_address_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch
) -> None:
    first = _jsonl(tmp_path / "first.jsonl", [{"id": "a", "text": "one"}, {"id": "b", "text": "two"}])
    second = _jsonl(tmp_path / "second.jsonl", [{"id": "c", "text": "three"}, {"id": "a", "text": "four"}])
    monkeypatch.setattr(cli, "make_embedder", no_engine)
    was_running = ray.is_initialized()
    store = tmp_path / "q"
    args = ["ingest", str(first), str(second), "-c", "docs", "--qdrant", str(store), "-m", "fake-model"]
    code, _, err = run(*args, "--no-progress", "--ray", "local")
    assert code != 0 and "occurs twice" in err and "second.jsonl:2" in err, err
    assert ray.is_initialized() == was_running
    with QdrantSink("docs", path=str(store)) as sink:
        assert sink.read_manifest() is None

    code, _, err = run(*args, "--no-progress", "--ray", "nowhere", "--on-duplicate", "last")
    assert code != 0 and "give auto, local or ray://host:port" in err, err
    with QdrantSink("docs", path=str(store)) as sink:
        assert sink.read_manifest() is None


def test_the_ray_readers_drop_the_versions_a_later_file_replaces(tmp_path: Path) -> None:
    first = _jsonl(
        tmp_path / "first.jsonl",
        [{"id": "a", "text": "a1"}, {"id": "b", "text": "b1"}, {"id": "a", "text": "a2"}],
    )
    second = _jsonl(tmp_path / "second.jsonl", [{"id": "c", "text": "c1"}, {"id": "b", "text": "b2"}])
    paths = [first, second]
    sources = [load_path(p) for p in paths]
    skip, superseded = superseded_by_source(sources, "text", None, "last")
    assert superseded == 2
    read = [
        (row["id"], row["text"])
        for index, path in enumerate(paths)
        for row in read_path({"index": index, "path": str(path)}, {"text_field": "text"}, skip)
    ]
    single = load_paths(paths)
    dropped = superseded_positions(single, "text", None, "last")
    assert read == [(d.doc_id, d.text) for i, d in enumerate(single) if i not in dropped]
    assert read == [("a", "a2"), ("c", "c1"), ("b", "b2")]


def test_a_splitter_column_gives_each_row_its_splitter_and_is_not_metadata() -> None:
    plan = _plan(splitter_column="kind")
    rows = [
        {"id": "md", "text": "# T\n\nx", "kind": "markdown", "lang": "en"},
        {"id": "txt", "text": "plain", "kind": None, "lang": "en"},
    ]
    docs = list(plan.documents(pa.Table.from_pylist(rows)))
    assert [d.splitter for d in docs] == ["markdown", None]
    assert [dict(d.metadata) for d in docs] == [{"lang": "en"}, {"lang": "en"}]
    chosen = _plan(splitter_column="kind", metadata_columns=("lang", "kind"))
    assert dict(chosen.document(rows[0]).metadata) == {"lang": "en", "kind": "markdown"}
    assert _plan().document(rows[0]).splitter is None

    with pytest.raises(ValueError, match=r"column 'kind' holds 'html'.*'markdown'"):
        plan.document({**rows[0], "kind": "html"})
    with pytest.raises(ValueError, match="splitter_column='kind' is not a column"):
        plan.document({"id": "x", "text": "y"})
