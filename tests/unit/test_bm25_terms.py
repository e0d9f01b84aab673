"""`BM25Terms`: Qdrant's BM25 analysis as text, indexed by Milvus's own BM25 Function (real Milvus Lite)."""

from pathlib import Path

import pytest

from vllm_embed.sparse import BM25Encoder, BM25Terms, SparseAnalyzerError

DOCUMENTS = [
    "The reader reads books every day and recommends them.",
    "Run a command in the shell and wait until it finishes.",
    "Compute a zlib crc32 checksum of the data.",
    "Return the extension of a file path.",
]


def test_terms_are_qdrants_tokens_with_their_counts() -> None:
    terms = BM25Terms()
    words = terms.document_text("Books, books and the reader's book.").split()
    qdrant = BM25Encoder().embed_documents(["Books, books and the reader's book."])[0]
    assert len(set(words)) == len(qdrant.indices)  # one word per token Qdrant keeps
    assert sorted(words.count(w) for w in set(words)) == [1, 3]  # "book" three times, "reader" once
    assert terms.query_text("how do the") == ""  # stop words only: nothing to search
    assert terms.query_text("reading") == terms.query_text("reads")  # one stem


def test_a_collection_built_with_other_terms_is_refused() -> None:
    recorded = {**BM25Terms().describe(), "version": "0.1.0", "fingerprint": "0"}
    with pytest.raises(SparseAnalyzerError, match=r"0\.1\.0"):
        BM25Terms.from_manifest(recorded, "docs")
    same = BM25Terms.from_manifest(BM25Terms().describe(), "docs")
    assert same.query_text("books") == BM25Terms().query_text("book")


def test_milvus_bm25_over_terms_ignores_stop_words_and_matches_stems(tmp_path: Path) -> None:
    from pymilvus import DataType, Function, FunctionType, MilvusClient

    terms = BM25Terms()
    client = MilvusClient(str(tmp_path / "terms.db"))
    try:
        schema = client.create_schema()
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("terms", DataType.VARCHAR, max_length=65535, enable_analyzer=True)
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(
            Function(
                name="bm25",
                function_type=FunctionType.BM25,
                input_field_names=["terms"],
                output_field_names=["sparse"],
            )
        )
        index = client.prepare_index_params()
        index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        client.create_collection("docs", schema=schema, index_params=index)
        client.insert("docs", [{"id": i, "terms": terms.document_text(t)} for i, t in enumerate(DOCUMENTS)])

        def top(question: str) -> list[int]:
            query = terms.query_text(question)
            if not query:
                return []
            hits = client.search("docs", [query], anns_field="sparse", limit=4, search_params={})
            return [hit["id"] for hit in hits[0]]

        assert top("How do I read a book?") == [0]  # "read" ~ "reads", "book" ~ "books"; no stop word hits
        assert top("crc32") == [2]  # a rare identifier: its one document, first
        assert top("what is the") == []
        assert top("file extensions")[0] == 3
    finally:
        client.close()


def test_a_chunk_whose_terms_exceed_the_varchar_keeps_the_first_whole_words() -> None:
    from vllm_embed.sinks.milvus import VARCHAR_MAX_BYTES, terms_text

    terms = BM25Terms()
    text = " ".join(f"token{i}" for i in range(20_000))  # ~20k distinct terms, far over 65,535 bytes
    full, kept = terms.document_text(text), terms_text(terms, text)
    assert len(kept.encode()) <= VARCHAR_MAX_BYTES < len(full)
    assert full.startswith(kept + " ")  # cut between two words, never inside one
    assert terms_text(terms, DOCUMENTS[0]) == terms.document_text(DOCUMENTS[0])
