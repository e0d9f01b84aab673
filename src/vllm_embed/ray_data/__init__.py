"""Scale-out on Ray Data: `Embedder` replicas in Ray actors, the same resumable ingest into Qdrant or Milvus.

Needs the `ray` extra: `pip install "vllm-embed[ray]"` (importing this package without it says so).
"""

from vllm_embed._optional import require

require("ray", "vllm_embed.ray_data (scale-out on Ray)")
require("pyarrow", "vllm_embed.ray_data (scale-out on Ray)")

from vllm_embed.ray_data.api import embed_dataset, ingest_dataset, ingest_paths  # noqa: E402
from vllm_embed.ray_data.session import ray_session  # noqa: E402

__all__ = ["embed_dataset", "ingest_dataset", "ingest_paths", "ray_session"]
