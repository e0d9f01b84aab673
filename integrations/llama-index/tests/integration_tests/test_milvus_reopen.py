"""A Milvus Lite collection ingested by vllm-embed (llama-index layout), read by LlamaIndex in a new process.

LlamaIndex's `MilvusVectorStore` never loads an existing collection, so in a process that did not write it the
first query fails ("Collection is in state 'released'"); `milvus_vector_store` loads it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vllm_embed import Document, Embedder, ingest
from vllm_embed.sinks import MilvusSink

pytest.importorskip("llama_index.vector_stores.milvus")

CORPUS = {
    "vllm": "vLLM is a high-throughput inference and serving engine for large language models.",
    "milvus": "Milvus Lite keeps a whole vector database in a single local file.",
    "bread": "A good sourdough needs flour, water, salt and a lively starter.",
}

# Runs in a new process: the query vector comes from the parent, so no engine starts there.
READER = """
import json, sys
from llama_index.core.vector_stores import VectorStoreQuery
from llama_index.embeddings.vllm_embed import milvus_vector_store
from llama_index.vector_stores.milvus import MilvusVectorStore

uri, vector = sys.argv[1], json.loads(sys.argv[2])
query = VectorStoreQuery(query_embedding=vector, similarity_top_k=1)
plain = MilvusVectorStore(uri=uri, collection_name="docs")
try:
    plain.query(query)
    upstream = "loaded"
except Exception as exc:
    upstream = str(exc)
store = milvus_vector_store(uri, "docs")
result = store.query(query)
print(json.dumps({"upstream": upstream, "doc_ids": [node.ref_doc_id for node in result.nodes]}))
store.client.close()
"""


def test_a_new_process_reads_the_collection_with_milvus_vector_store(
    minilm_embedder: Embedder, tmp_path: Path
) -> None:
    uri = str(tmp_path / "milvus.db")
    with MilvusSink("docs", uri=uri, layout="llama-index") as sink:
        ingest(
            [Document(text, id=key) for key, text in CORPUS.items()],
            embedder=minilm_embedder,
            sink=sink,
            progress=False,
        )
    # Milvus Lite serves (and locks) the file until its server is released, at the latest when the process
    # exits; release it as the end of a `vllm-embed ingest` run would.
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(uri)
    vector = minilm_embedder.embed_query("How do I bake bread at home?").tolist()

    done = subprocess.run(
        [sys.executable, "-c", READER, uri, json.dumps(vector)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert "released" in found["upstream"], (
        "LlamaIndex now loads existing collections: see milvus_vector_store"
    )
    assert found["doc_ids"] == ["bread"]
