"""Engine replicas: an `Embedder` in each actor of a Ray Data `map_batches` stage."""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from vllm_embed._optional import require
from vllm_embed.config import EmbedderConfig
from vllm_embed.ingest.embedder_api import SupportsTokenInput
from vllm_embed.ray_data.blocks import (
    REPLICA_COLUMN,
    SECONDS_COLUMN,
    chunk_texts,
    chunk_token_ids,
    with_vectors,
)

Kind = Literal["document", "query"]
CPU_LEFT_FOR_TASKS = 1.0
"""CPUs (logical, Ray's) that CPU replicas leave free for the reading, chunking and writing tasks."""


def replica_resources(config: EmbedderConfig, replicas: int) -> dict[str, Any]:
    """What each replica asks Ray for: one GPU per engine rank where the cluster has GPUs, else CPUs.

    On CPUs the replicas share what the cluster has, less `CPU_LEFT_FOR_TASKS` for the other stages (a
    replica holding every CPU would leave the chunking tasks that feed it unscheduled).
    """
    ray: Any = require("ray", "vllm_embed.ray_data")
    ranks = config.tensor_parallel_size * config.pipeline_parallel_size
    resources = ray.cluster_resources()
    if resources.get("GPU", 0) > 0:
        return {"num_gpus": float(ranks), "num_cpus": 1.0}
    cpus = float(resources.get("CPU", 1))
    return {"num_cpus": max(0.1, min(float(ranks), (cpus - CPU_LEFT_FOR_TASKS) / replicas))}


class _Replica:
    """Holds one `Embedder` for the life of the actor."""

    def __init__(self, config: EmbedderConfig, expected: dict[str, Any] | None = None) -> None:
        from vllm_embed.embedder import Embedder

        self.embedder = Embedder(config=config)
        self.name = _replica_name()
        if expected is not None:
            found = {**self.embedder.describe(), "max_input_tokens": self.embedder.max_input_tokens}
            differing = {k: (v, found.get(k)) for k, v in expected.items() if found.get(k) != v}
            if differing:
                self.embedder.close()
                raise RuntimeError(
                    f"the replica's engine differs from what the driver planned {differing} "
                    "(expected, engine): pass dimensions= and max_model_len= explicitly"
                )


def _replica_name() -> str:
    import ray

    try:
        return str(ray.get_runtime_context().get_actor_id())
    except Exception:  # noqa: BLE001 - outside an actor (a direct call in tests)
        return uuid.uuid4().hex


class DatasetReplica(_Replica):
    """`embed_dataset`'s stage: adds `output_column` (float32 vectors) to every row."""

    def __init__(
        self,
        config: EmbedderConfig,
        kind: Kind,
        text_column: str,
        output_column: str,
        instruction: str | None,
    ) -> None:
        super().__init__(config)
        self.kind, self.text_column, self.output_column = kind, text_column, output_column
        self.instruction = instruction

    def __call__(self, table: pa.Table) -> pa.Table:
        """Returns `table` with the vectors of its texts."""
        texts = table.column(self.text_column).to_pylist()
        if self.kind == "query":
            vectors = self.embedder.embed_queries(texts, instruction=self.instruction)
        else:
            vectors = self.embedder.embed_documents(texts)
        from ray.data.extensions import ArrowTensorArray

        return table.append_column(self.output_column, ArrowTensorArray.from_numpy(vectors))


class IngestReplica(_Replica):
    """`ingest_dataset`'s stage: embeds a block's rows to embed, and says who did and how long it took."""

    def __call__(self, table: pa.Table) -> pa.Table:
        """Returns `table` with a vector per row (zeros on rows not embedded) and the replica's columns.

        Chunk rows carry the chunker's token ids, which go to the engine as they are (as in `ingest`).
        """
        positions, texts = chunk_texts(table)
        token_ids = chunk_token_ids(table, positions)
        vectors = np.zeros((table.num_rows, self.embedder.dimension), dtype=np.float32)
        started = time.perf_counter()
        if texts and token_ids is not None and isinstance(self.embedder, SupportsTokenInput):
            vectors[positions] = self.embedder._embed_document_tokens(texts, token_ids)
        elif texts:
            vectors[positions] = self.embedder.embed_documents(texts)
        share = (time.perf_counter() - started) / max(len(texts), 1)
        names: list[str | None] = [None] * table.num_rows
        seconds = [0.0] * table.num_rows
        for position in positions:
            names[position], seconds[position] = self.name, share
        timed = table.append_column(REPLICA_COLUMN, pa.array(names, pa.string()))
        return with_vectors(timed.append_column(SECONDS_COLUMN, pa.array(seconds, pa.float64())), vectors)
