"""The store contract: the same scenarios on every store of `stores.STORES`.

No engine: FakeHashEmbedder vectors (the store is what is under test). A scenario that cannot apply to a
store says why (a store that takes no creation settings; one that many processes may open at once).
"""

from __future__ import annotations

import base64
import os
import pickle
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import stop_process_tree
from contract.stores import STORES, OpenStore, open_store
from ingest_fixtures import FakeHashEmbedder, FakeHashMultiVectorEmbedder, FakeHashSparseEmbedder, maxsim

from vllm_embed.errors import ManifestError, StoreBusyError, UnmanagedCollectionError
from vllm_embed.ingest import Document, ingest, search
from vllm_embed.ingest.verify import verify_collection
from vllm_embed.sinks import CollectionNotFoundError, Manifest, ManifestMismatchError
from vllm_embed.sinks.base import BaseSink
from vllm_embed.sinks.fusion import FusionSettings


@pytest.fixture(params=STORES, ids=[store.name for store in STORES])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    """One store of the contract, with a fresh collection name."""
    yield from open_store(request.param, request, tmp_path)


@pytest.fixture
def qdrant_url() -> Iterator[str]:
    """A recording Qdrant server stand-in (`tests/qdrant_stub.py`) for one test."""
    from qdrant_stub import qdrant_stub

    with qdrant_stub() as stub:
        yield stub.url


LONG = " ".join(f"word{i}" for i in range(60))
DOCS = [
    Document("Compute a checksum with zlib.crc32.", id="crc", metadata={"lang": "py", "year": 2020}),
    Document("The quick brown fox jumps over the lazy dog.", id="fox", metadata={"lang": "en", "year": 2021}),
    Document(LONG, id="long", metadata={"lang": 'it\'s "en"', "year": 2022}),
]  # fmt: skip


def run(sink: BaseSink, docs: list[Document] = DOCS, fake: FakeHashEmbedder | None = None) -> object:
    return ingest(docs, embedder=fake or FakeHashEmbedder(), sink=sink, progress=False)


def doc_ids(hits: list) -> list[str]:
    return sorted({h.doc_id for h in hits})


def test_ingest_then_rerun_rewrites_nothing_and_a_shrunk_document_loses_its_tail(store: OpenStore) -> None:
    fake = FakeHashEmbedder()
    with store.sink() as sink:
        first = run(sink, fake=fake)
        assert first.chunks > len(DOCS) and sink.count() == first.chunks
        embedded = len(fake.embedded)
        again = run(sink, fake=fake)
        assert (again.written, again.skipped, len(fake.embedded)) == (0, first.chunks, embedded)
        shrunk = [*DOCS[:2], Document("short now", id="long", metadata=DOCS[2].metadata)]
        run(sink, shrunk, fake)
        assert sink.count() == 3
        hits = search("anything", embedder=fake, sink=sink, top_k=50)
        assert [(h.doc_id, h.chunk_index) for h in sorted(hits, key=lambda h: h.doc_id)] == [
            ("crc", 0),
            ("fox", 0),
            ("long", 0),
        ]


def test_filters_match_metadata_values_exactly(store: OpenStore) -> None:
    fake = FakeHashEmbedder()
    with store.sink() as sink:
        run(sink, fake=fake)
        assert doc_ids(search("q", embedder=fake, sink=sink, top_k=50, filter={"lang": "en"})) == ["fox"]
        assert doc_ids(search("q", embedder=fake, sink=sink, top_k=50, filter={"year": 2020})) == ["crc"]
        quoted = search("q", embedder=fake, sink=sink, top_k=50, filter={"lang": 'it\'s "en"'})
        assert doc_ids(quoted) == ["long"] and len(quoted) > 1
        assert search("q", embedder=fake, sink=sink, top_k=50, filter={"lang": '" or 1 == 1 or "'}) == []


@pytest.mark.parametrize("layout", ["vllm-embed", "langchain", "llama-index"])
def test_changed_metadata_is_rewritten_on_rerun_without_embedding(store: OpenStore, layout: str) -> None:
    """A re-run converges to what a fresh run leaves, metadata included, and embeds nothing new."""
    fake = FakeHashEmbedder()
    with store.sink(layout=layout) as sink:
        first = run(sink, fake=fake)
        embedded = len(fake.embedded)
        metadata = {"lang": "de", "year": 2022, "tags": ["a", "b"]}
        changed = [*DOCS[:2], Document(LONG, id="long", metadata=metadata)]
        again = run(sink, changed, fake)
        long_chunks = first.chunks - 2
        assert (again.embedded, again.updated, again.skipped) == (0, long_chunks, 2)
        assert (len(fake.embedded), sink.count()) == (embedded, first.chunks)
        hits = search("q", embedder=fake, sink=sink, top_k=50, filter={"lang": "de"})
        assert doc_ids(hits) == ["long"] and len(hits) == long_chunks
        assert all(h.metadata == metadata for h in hits)
        assert search("q", embedder=fake, sink=sink, top_k=50, filter={"lang": 'it\'s "en"'}) == []
        third = run(sink, changed, fake)
        assert (third.updated, third.skipped, len(fake.embedded)) == (0, first.chunks, embedded)


def test_hybrid_ranks_a_term_only_bm25_knows_and_the_choice_sticks(store: OpenStore) -> None:
    fake = FakeHashEmbedder()
    with store.sink(hybrid=True) as sink:
        run(sink, fake=fake)
        assert sink.read_manifest().sparse == "bm25"
        assert sink.sparse_search("checksum zlib", 3)[0].doc_id == "crc"
        fused = sink.hybrid_search("checksum zlib", fake.embed_query("checksum zlib"), 3)
        assert fused[0].doc_id == "crc" and "sparse" in fused[0].found_by
        assert doc_ids(sink.sparse_search("fox", 3, filter={"lang": "py"})) in ([], ["crc"])
        # the filter applies to both searches: BM25's only match is lang=py
        hits = search("zlib.crc32", embedder=fake, sink=sink, top_k=5, filter={"lang": "en"}, mode="hybrid")
        assert doc_ids(hits) == ["fox"] and all(h.found_by == ("dense",) for h in hits)
        # a shrunk document leaves no stale BM25 terms
        run(sink, [Document("now about adler32 only", id="long", metadata=DOCS[2].metadata)], fake)
        assert doc_ids(sink.sparse_search("word7 word8", 5)) == []
        # a rewritten manifest keeps the collection's sparse settings
        stored = sink.read_manifest()
        sink.write_manifest(Manifest.from_description(fake.describe()))
        assert sink.read_manifest().sparse_vector == stored.sparse_vector
    with store.sink(hybrid=False) as sink, pytest.raises(ManifestMismatchError, match="is hybrid"):
        run(sink)
    with store.sink() as sink:  # hybrid left out follows the collection
        assert [h.doc_id for h in sink.sparse_search("zlib.crc32", 1)] == ["crc"]
    with store.sink(collection=store.collection + "_dense") as sink:
        run(sink)
    with (
        store.sink(collection=store.collection + "_dense", hybrid=True) as sink,
        pytest.raises(ManifestMismatchError, match=r"dense-only.*new collection"),
    ):
        run(sink)


def test_hybrid_fuses_both_candidate_lists_client_side_and_a_rare_word_is_bm25s_top_hit(
    store: OpenStore,
) -> None:
    fake = FakeHashEmbedder()
    question = "how do I get the crc32 of the data?"  # stop words and a word only "crc" holds
    with store.sink(hybrid=True) as sink:
        run(sink, fake=fake)
        # the store's analysis drops stop words (Milvus: BM25Terms), so "the" does not bring in "fox"
        assert doc_ids(sink.sparse_search(question, 5)) == ["crc"]
        assert sink.sparse_search("the of a", 5) == []  # only stop words: nothing to match
        vector = fake.embed_query(question)
        dense, sparse = sink.search(vector, 20), sink.sparse_search(question, 20)
        only = {"dense": FusionSettings(sparse_weight=0), "sparse": FusionSettings(dense_weight=0)}
        for branch, listed in (("dense", dense), ("sparse", sparse)):
            fused = sink.hybrid_search(question, vector, 20, candidates=20, fusion=only[branch])
            assert [h.id for h in fused][: len(listed)] == [h.id for h in listed]
        fused = sink.hybrid_search(question, vector, 20, candidates=20)
        assert {h.id for h in fused} == {h.id for h in dense} | {h.id for h in sparse}
        by_id = {h.id: h.found_by for h in fused}
        assert all(("dense" in by_id[h.id]) for h in dense) and all("sparse" in by_id[h.id] for h in sparse)
        weighted = search(question, embedder=fake, sink=sink, top_k=1, fusion="weighted", dense_weight=0)
        assert [(h.doc_id, h.score) for h in weighted] == [("crc", 1.0)]


def test_a_hybrid_milvus_collection_from_before_bm25_terms_is_searched_as_before(store: OpenStore) -> None:
    if not store.name.startswith("milvus"):
        pytest.skip("only Milvus collections were ever made with the server's analyzer")
    from pymilvus import DataType, Function, FunctionType, MilvusClient

    from vllm_embed.sinks.milvus import BM25_ANALYZER

    with store.sink() as sink:  # the schema hybrid collections had before `bm25_terms`
        schema = MilvusClient.create_schema(auto_id=False)
        for name, type_name, kwargs in sink.layout.milvus_fields(8, 65535):
            if name == "text":
                kwargs = {**kwargs, "enable_analyzer": True, "analyzer_params": BM25_ANALYZER}
            schema.add_field(name, getattr(DataType, type_name), **kwargs)
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(Function("bm25", FunctionType.BM25, ["text"], ["sparse"]))
        index = MilvusClient.prepare_index_params()
        index.add_index("vector", index_type="FLAT", metric_type="COSINE")
        index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        sink.client.create_collection(store.collection, schema=schema, index_params=index)
    with store.sink(adopt=True) as sink:
        run(sink)
        analyzer = sink.read_manifest().sparse_analyzer
        assert analyzer == {"function": "BM25", "analyzer_params": BM25_ANALYZER}
    with store.sink() as sink:  # reopened: the raw text goes to the server's analyzer, as before
        assert sink.sparse_search("zlib.crc32", 1)[0].doc_id == "crc"
        assert "bm25_terms" not in {
            f["name"] for f in sink.client.describe_collection(store.collection)["fields"]
        }
        fused = sink.hybrid_search("zlib.crc32", FakeHashEmbedder().embed_query("zlib.crc32"), 3)
        assert "sparse" in {b for h in fused for b in h.found_by}


MORE_DOCS = [
    *DOCS,
    *(Document(f"{word} notes on vectors and {word} stores", id=f"d{i}", metadata={"lang": "en", "year": i})
      for i, word in enumerate(["qdrant", "milvus", "colbert", "splade", "checksum", "fox"]))
]  # fmt: skip
QUERIES = ["checksum zlib", "qdrant vectors", "lazy fox stores", "word7 word30 splade"]


def stored_texts(sink: BaseSink) -> dict[str, str]:
    ids = [point for batch in sink.iter_vectors(64) for point, _ in batch]
    return sink.fetch_texts(ids)


def test_learned_sparse_search_is_the_brute_force_dot_product_and_the_model_sticks(store: OpenStore) -> None:
    fake, sparse = FakeHashEmbedder(), FakeHashSparseEmbedder()
    with store.sink() as sink:
        ingest(MORE_DOCS, embedder=fake, sink=sink, sparse=sparse, progress=False)
        manifest = sink.read_manifest()
        assert (manifest.sparse, manifest.sparse_model["model"]) == ("learned", "fake-splade")
        texts = stored_texts(sink)
        for query in QUERIES:
            vector = sparse.embed_query(query)
            scores = {point: vector.dot(sparse.embed_query(text)) for point, text in texts.items()}
            expected = sorted((p for p in scores if scores[p] > 0), key=lambda p: -scores[p])[:5]
            hits = sink.sparse_search(vector, 5)
            assert [h.id for h in hits] == expected
            assert [h.score for h in hits] == pytest.approx([scores[p] for p in expected], rel=1e-4)
        hits = search(DOCS[0].text, embedder=fake, sink=sink, sparse=sparse, top_k=3)  # hybrid
        assert hits[0].doc_id == "crc" and hits[0].found_by == ("dense", "sparse")
        with pytest.raises(
            ValueError, match=r"learned sparse vectors of 'fake-splade'.*sparse=SparseEmbedder"
        ):
            search("zlib", embedder=fake, sink=sink, mode="sparse")
        with pytest.raises(ValueError, match="learned sparse vectors"):
            sink.sparse_search("zlib", 3)  # a text is BM25's query
        # changed metadata is rewritten without embedding, keeping the sparse vectors
        changed = [Document(d.text, id=d.id, metadata={**d.metadata, "v": 2}) for d in MORE_DOCS]
        report = ingest(changed, embedder=fake, sink=sink, sparse=sparse, progress=False)
        assert report.embedded == 0 and report.updated == report.chunks
        assert sink.sparse_search(sparse.embed_query("checksum zlib"), 1)[0].metadata["v"] == 2
        # repairing dense vectors leaves the learned sparse ones as they are
        before = [(h.id, h.score) for h in sink.sparse_search(sparse.embed_query(QUERIES[1]), 5)]
        broken = list(texts)[:2]
        sink.replace_vectors(broken, np.full((2, fake.dimension), store.store.invalid_vector, np.float32))
        assert verify_collection(sink, fake, repair=True, batch_size=4).repaired == 2
        assert [(h.id, h.score) for h in sink.sparse_search(sparse.embed_query(QUERIES[1]), 5)] == before
    with store.sink() as sink, pytest.raises(ManifestMismatchError, match=r"'fake-splade'.*--sparse-model"):
        run(sink)
    with store.sink() as sink, pytest.raises(ManifestMismatchError, match="sparse model: collection has"):
        ingest(DOCS, embedder=fake, sink=sink, sparse=FakeHashSparseEmbedder("other"), progress=False)
    with store.sink(hybrid=True) as sink, pytest.raises(ManifestMismatchError, match="not BM25"):
        run(sink)
    with store.sink(collection=store.collection + "_dense") as sink:
        run(sink)  # dense-only: a sparse model cannot be added afterwards
        with pytest.raises(ManifestMismatchError, match="cannot be added to an existing collection"):
            ingest(DOCS, embedder=fake, sink=sink, sparse=sparse, progress=False)


def test_multivector_maxsim_is_the_brute_force_one_in_qdrant_and_refused_by_milvus(store: OpenStore) -> None:
    fake, colbert = FakeHashEmbedder(), FakeHashMultiVectorEmbedder()
    if store.name.startswith("milvus"):
        with store.sink() as sink, pytest.raises(ValueError, match=r"Milvus Lite 3\.2 .* Qdrant"):
            ingest(DOCS, embedder=fake, sink=sink, multivector=colbert, progress=False)
        with store.sink() as sink:
            assert sink.state().missing and fake.calls == []  # refused before anything was embedded
        return
    with store.sink() as sink:
        ingest(MORE_DOCS, embedder=fake, sink=sink, multivector=colbert, progress=False)
        assert sink.read_manifest().multivector["dimensions"] == colbert.dimensions
        texts = stored_texts(sink)
        for query in QUERIES:
            matrix = colbert.embed_query(query)
            expected = {point: maxsim(matrix, colbert.embed_query(text)) for point, text in texts.items()}
            assert sink.maxsim(matrix, list(texts)) == pytest.approx(expected, rel=1e-4)
            hits = search(
                query, embedder=fake, sink=sink, multivector=colbert, top_k=5, candidates=len(texts)
            )
            best = sorted(expected.values(), reverse=True)[:5]  # the top 5 (tied points may swap places)
            assert [expected[h.id] for h in hits] == pytest.approx(best, rel=1e-4)
            assert [h.maxsim_score for h in hits] == pytest.approx(best, rel=1e-4)
        with pytest.raises(ValueError, match=r"per-token vectors of 'fake-colbert'.*multivector=False"):
            search("zlib", embedder=fake, sink=sink)
        plain = search("zlib", embedder=fake, sink=sink, multivector=False)
        assert all(h.maxsim_score is None for h in plain)
        changed = [Document(d.text, id=d.id, metadata={**d.metadata, "v": 2}) for d in MORE_DOCS]
        report = ingest(changed, embedder=fake, sink=sink, multivector=colbert, progress=False)
        assert report.embedded == 0 and report.updated == report.chunks
        assert sink.maxsim(matrix, list(texts)) == pytest.approx(expected, rel=1e-4)
    with (
        store.sink() as sink,
        pytest.raises(ManifestMismatchError, match=r"'fake-colbert'.*--multivector-model"),
    ):
        run(sink)
    with store.sink(collection=store.collection + "_lc", layout="langchain") as sink:
        ingest(DOCS, embedder=fake, sink=sink, multivector=colbert, progress=False)  # beside an unnamed one
        hits = search("zlib", embedder=fake, sink=sink, multivector=colbert, top_k=3)
        assert len(hits) == 3 and all(h.maxsim_score is not None for h in hits)


def test_a_differing_storage_setting_is_refused_before_anything_is_written(store: OpenStore) -> None:
    if store.store.storage is None:
        pytest.skip(f"{store.name} takes no creation settings (refused at construction)")
    created, other = store.store.storage
    with store.sink(**created) as sink:
        run(sink)
        manifest = sink.read_manifest()
    (name, value), (_, asked) = next(iter(created.items())), next(iter(other.items()))
    with store.sink(**other) as sink:
        with pytest.raises(
            ManifestMismatchError, match=f"{name}: collection has {value!r}, this run asks for"
        ):
            run(sink)
        assert sink.read_manifest() == manifest
    with store.sink() as sink:  # settings left out follow the collection
        assert run(sink).skipped == sink.count()
        assert sink.read_manifest().storage[name] == value != asked


def test_an_index_field_with_another_type_is_refused_before_anything_is_written(store: OpenStore) -> None:
    layout, name = store.store.index_field
    with store.sink(layout=layout, index_fields=[f"{name}:integer"]) as sink:
        run(sink)
        manifest = sink.read_manifest()
        assert manifest.storage["index_fields"] == [f"{name}:integer"]
    with store.sink(index_fields=[f"{name}:keyword"]) as sink:
        with pytest.raises(
            ManifestMismatchError,
            match=f"'{name}': collection indexes it as integer, this run asks for keyword",
        ):
            run(sink)
        assert sink.read_manifest() == manifest
    with store.sink(index_fields=[f"{name}:integer"]) as sink:  # the same type again: nothing to add
        assert run(sink).skipped == sink.count()
        assert sink.read_manifest() == manifest


def test_a_collection_without_manifest_is_adopted_when_it_fits_and_refused_otherwise(
    store: OpenStore,
) -> None:
    with store.sink() as sink:
        chunks = run(sink).chunks
        store.store.put_manifest(sink, None)
    with store.sink() as sink:
        assert sink.state().unmanaged
        with pytest.raises(UnmanagedCollectionError, match=r"--adopt \(adopt=True\)"):
            run(sink)
    with store.sink(adopt=True) as sink, pytest.raises(ManifestMismatchError, match="cannot be adopted"):
        run(sink, fake=FakeHashEmbedder(dimension=16))
    with store.sink(adopt=True) as sink:
        assert sink.state().unmanaged  # the refusal wrote nothing
        report = run(sink)
        assert (report.skipped, report.written) == (chunks, 0)
        assert sink.read_manifest().adopted


def test_verify_finds_the_invalid_vectors_and_repair_replaces_them(store: OpenStore) -> None:
    fake = FakeHashEmbedder()
    with store.sink() as sink:
        chunks = run(sink, fake=fake).chunks
        ids = sorted(point_id for batch in sink.iter_vectors(4) for point_id, _ in batch)
        assert len(ids) == chunks
        sink.replace_vectors(ids[:2], np.full((2, fake.dimension), store.store.invalid_vector, np.float32))
        assert verify_collection(sink, batch_size=3).invalid == 2
        report = verify_collection(sink, fake, repair=True, batch_size=3)
        assert (report.checked, report.invalid, report.repaired) == (chunks, 2, 2)
        assert verify_collection(sink).invalid == 0


def nested(depth: int, leaf: object = 1) -> dict:
    value: object = leaf
    for _ in range(depth - 1):
        value = {"a": value}
    return {"a": value}


def test_metadata_too_deep_or_too_large_is_rejected_and_the_collection_still_opens(store: OpenStore) -> None:
    from vllm_embed.ingest import point_id
    from vllm_embed.ingest.documents import DEFAULT_MAX_METADATA_BYTES, MAX_METADATA_DEPTH

    docs = [
        Document("fine", id="ok", metadata=nested(MAX_METADATA_DEPTH)),
        Document("deep", id="deep", metadata=nested(130)),  # unloadable in Qdrant's engine after a restart
        Document("deeper", id="deeper", metadata=nested(5000, float("nan"))),  # past Python's recursion limit
        Document("big", id="big", metadata={"blob": "x" * DEFAULT_MAX_METADATA_BYTES}),
    ]
    with store.sink() as sink:
        report = run(sink, docs)
        reasons = dict(report.rejected)
        assert report.documents == 1 and sorted(reasons) == ["big", "deep", "deeper"]
        too_deep = f"metadata nested deeper than {MAX_METADATA_DEPTH} levels; flatten it"
        assert reasons["deep"] == reasons["deeper"] == too_deep
        assert f"is larger than max_metadata_bytes={DEFAULT_MAX_METADATA_BYTES}" in reasons["big"]
    with store.sink() as sink:  # the collection still opens, and holds the one document
        ids = {name: point_id(name, 0) for name in ("ok", "deep", "deeper", "big")}
        assert sink.count() == 1 and sink.fetch_texts(list(ids.values())) == {ids["ok"]: "fine"}
        report = ingest(
            docs[3:], embedder=FakeHashEmbedder(), sink=sink, progress=False, max_metadata_bytes=None
        )
        assert report.documents == 1 and sink.count() == 2


HOLDER = """
import base64, pickle, sys, time
from ingest_fixtures import FakeHashEmbedder
from vllm_embed.ingest import ingest
sink = pickle.loads(base64.b64decode(sys.argv[1])).open()
ingest(["held"], embedder=FakeHashEmbedder(), sink=sink, progress=False)
print("ready", flush=True)
time.sleep(600)
"""

SLOW_INGEST = """
import base64, pickle, sys, time
from ingest_fixtures import FakeHashEmbedder
from vllm_embed.ingest import ingest

class Slow(FakeHashEmbedder):
    def embed_documents(self, texts):
        time.sleep(0.02)
        return super().embed_documents(texts)

sink = pickle.loads(base64.b64decode(sys.argv[1])).open()
upsert = sink.upsert
def reporting_upsert(chunks, vectors):
    upsert(chunks, vectors)
    print(len(chunks), flush=True)  # acknowledged by the store
sink.upsert = reporting_upsert
texts = [line for line in sys.stdin.read().split("\\n") if line]
ingest(texts, embedder=Slow(), sink=sink, batch_size=int(sys.argv[2]), progress=False)
"""


def python(script: str, *args: str, **kwargs) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args], text=True, env=env, **kwargs
    )


def spec_argument(store: OpenStore) -> str:
    """The store's spec as a command-line argument: the child process opens the same collection with it.

    Built without opening the store here (a Milvus Lite file stays locked by a process that opened it).
    """
    return base64.b64encode(pickle.dumps(store.spec())).decode()


def test_an_embedded_store_open_in_another_process_is_busy_and_names_it(store: OpenStore) -> None:
    if not store.store.embedded:
        with store.sink() as one, store.sink() as two:  # a server: any number of clients at once
            run(one)
            assert two.count() == one.count() and one.spec().shared
        return
    holder = python(HOLDER, spec_argument(store), stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreBusyError) as failure:
            store.sink().count()
        message = str(failure.value)
        assert "is open elsewhere" in message and f"PID {holder.pid}: " in message and "-c" in message
    finally:
        stop_process_tree(holder.pid)
    with store.sink() as sink:  # free again once the other process is gone
        assert sink.count() == 1 and not sink.spec().shared
        assert pickle.loads(pickle.dumps(sink.spec())) == store.spec()


TEXTS = [f"passage {i}: " + " ".join(f"word{(i * 7 + j) % 97}" for j in range(12)) for i in range(160)]
BATCH = 8


def stored(sink: BaseSink) -> dict[str, tuple[str, np.ndarray]]:
    vectors = {point_id: vector for batch in sink.iter_vectors(256) for point_id, vector in batch}
    texts = sink.fetch_texts(sorted(vectors))
    return {point_id: (texts[point_id], vector) for point_id, vector in vectors.items()}


def test_sigkill_mid_ingest_then_rerun_equals_an_uninterrupted_run(store: OpenStore) -> None:
    process = python(
        SLOW_INGEST, spec_argument(store), str(BATCH), stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write("\n".join(TEXTS))
    process.stdin.close()
    acknowledged = 0
    try:
        while acknowledged < 5 * BATCH:
            line = process.stdout.readline()
            assert line, f"the ingest ended early (exit code {process.wait()})"
            acknowledged += int(line)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()

    fake = FakeHashEmbedder()
    with store.sink() as sink:
        partial = sink.count()
        assert acknowledged <= partial < len(TEXTS), (
            "every acknowledged point survives; the kill lands mid-run"
        )
        report = ingest(TEXTS, embedder=fake, sink=sink, batch_size=BATCH, progress=False)
        assert (report.skipped, report.embedded, sink.count()) == (partial, len(TEXTS) - partial, len(TEXTS))
        resumed = stored(sink)
    with store.sink(collection=store.collection + "_ref") as sink:
        ingest(TEXTS, embedder=fake, sink=sink, batch_size=BATCH, progress=False)
        expected = stored(sink)
    assert sorted(resumed) == sorted(expected)
    for point_id, (text, vector) in expected.items():
        assert resumed[point_id][0] == text
        np.testing.assert_allclose(resumed[point_id][1], vector, atol=1e-6)


def test_the_manifest_survives_reopening_and_another_model_or_layout_is_refused(store: OpenStore) -> None:
    manifest = Manifest.from_description(FakeHashEmbedder().describe(), layout="langchain")
    with store.sink(layout="langchain") as sink:
        assert sink.state().missing and sink.read_manifest() is None
        sink.prepare(manifest)
        sink.prepare(manifest)  # an existing collection with the same manifest is reused
    with store.sink() as sink:
        assert sink.read_manifest().model_copy(update={"storage": None}) == manifest
        assert sink.layout.name == "langchain"  # no layout asked for: the collection's is used
        with pytest.raises(ManifestMismatchError, match="'other'"):
            sink.prepare(manifest.model_copy(update={"model": "other"}))
        sibling = sink.for_collection(store.collection + "_2")
        try:
            assert sibling.state().missing and sibling.spec().shared == sink.spec().shared
        finally:
            sibling.close()
    with (
        store.sink(layout="llama-index") as sink,
        pytest.raises(ManifestMismatchError, match="layout: collection has 'langchain'"),
    ):
        sink.prepare(manifest.model_copy(update={"layout": "llama-index"}))


GOOD = Manifest.from_description(FakeHashEmbedder().describe()).model_dump()


@pytest.mark.parametrize(
    ("stored", "problem"),
    [
        ({**GOOD, "dimensions": "abc"}, "dimensions: Input should be a valid integer"),
        ("{not json", "Expecting"),
    ],
    ids=["mistyped", "not-json"],
)
def test_a_damaged_manifest_says_so_and_write_manifest_repairs_it(store: OpenStore, stored, problem) -> None:
    fake = FakeHashEmbedder()
    with store.sink() as sink:
        run(sink, DOCS[:2], fake)
        store.store.put_manifest(sink, stored)
    with store.sink() as sink:
        for attempt in (
            sink.read_manifest,
            lambda: search("q", embedder=fake, sink=sink),
            lambda: run(sink, DOCS, fake),
        ):
            with pytest.raises(ManifestError) as failure:
                attempt()
            message = str(failure.value)
            assert f"manifest of collection {store.collection!r} is damaged" in message and problem in message
            assert ".write_manifest(Manifest.from_description(embedder.describe()" in message
        assert len(fake.calls) == 1
        # The repair the message names: the manifest is checked against the stored vectors first.
        with pytest.raises(ManifestMismatchError, match="holds 8-dimensional vectors, the manifest says 16"):
            sink.write_manifest(Manifest.from_description(FakeHashEmbedder(dimension=16).describe()))
        sink.write_manifest(Manifest.from_description(fake.describe()))
        assert sink.read_manifest() == Manifest.from_description(fake.describe())
        # A manifest written without chunking settings counts as fixed token windows (older versions).
        report = ingest(DOCS, embedder=fake, sink=sink, progress=False, splitter="tokens")
        assert (report.skipped, report.embedded) == (2, report.chunks - 2)
    with store.sink(collection=store.collection + "_none") as sink, pytest.raises(CollectionNotFoundError):
        sink.write_manifest(Manifest.from_description(fake.describe()))


def test_verify_blames_a_manifest_whose_size_the_store_contradicts_not_the_vectors(store: OpenStore) -> None:
    with store.sink() as sink:
        run(sink, DOCS[:2])
        store.store.put_manifest(sink, {**GOOD, "dimensions": 16})  # hand-edited: the vectors have 8
    repairer = FakeHashEmbedder(dimension=16)  # fits the edited manifest, so repair would re-embed all
    with store.sink() as sink:
        for attempt in (
            lambda: verify_collection(sink),
            lambda: verify_collection(sink, repairer, repair=True),
        ):
            with pytest.raises(ManifestError) as failure:
                attempt()
            message = str(failure.value)
            assert "manifest of collection" in message and "says 16 dimensions" in message, message
            assert "store holds 8-dimensional vectors" in message and ".write_manifest(" in message
        assert repairer.calls == []
        sink.write_manifest(Manifest.from_description(FakeHashEmbedder().describe()))  # the repair named
        assert verify_collection(sink).invalid == 0


UNCLOSED = """
import base64, gc, pickle, sys
from ingest_fixtures import FakeHashEmbedder
from vllm_embed.ingest import ingest

gc.disable()
class App:  # an application object in a reference cycle holds the sink until the interpreter's exit
    pass
app = App()
app.itself, app.sink = app, pickle.loads(base64.b64decode(sys.argv[1])).open()
ingest(["one", "two"], embedder=FakeHashEmbedder(), sink=app.sink, progress=False)
print(app.sink.count())
"""  # the sink is never closed: the exit must release it, before the modules it needs are torn down


def test_an_unclosed_sink_releases_its_store_at_exit_without_a_traceback(store: OpenStore) -> None:
    process = python(UNCLOSED, spec_argument(store), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout, stderr = process.communicate(timeout=120)
    assert (process.returncode, stdout.strip(), stderr) == (0, "2", "")
    with store.sink() as sink:  # the store was released: this process can open it
        assert sink.count() == 2
