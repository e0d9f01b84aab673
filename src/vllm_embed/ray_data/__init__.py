"""Scale-out on Ray Data: `Embedder` replicas in Ray actors, the same resumable ingest into Qdrant or Milvus.

Needs the `ray` extra: `pip install "vllm-embed[ray]"`.
"""

from vllm_embed.ray_data.api import embed_dataset, ingest_dataset, ingest_paths
from vllm_embed.ray_data.session import ray_session

__all__ = ["embed_dataset", "ingest_dataset", "ingest_paths", "ray_session"]
