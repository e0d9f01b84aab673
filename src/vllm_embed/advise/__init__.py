"""`advise`: the smallest vectors that keep recall on your own data, measured rather than guessed.

A sample of the corpus is chunked exactly as `ingest` chunks it and embedded once at the model's native
size. Every candidate storage configuration — each Matryoshka size the model allows, stored as float32,
int8 (scalar) or binary, searched with or without rescoring — is then searched exactly with numpy, and its
recall@k is its agreement with the native float32 exact ranking. No labelled queries are needed, and the
numbers do not depend on a store's approximate index.

Smaller sizes are not embedded again: vLLM makes a Matryoshka size by truncating the pooled vector and
L2-normalising it (`vllm.model_executor.layers.pooler.seqwise.heads.EmbeddingPoolerHead`), which is exactly
truncating and re-normalising the native unit vector, so the native vectors give every size.

How each configuration is simulated (Qdrant's own encodings, `lib/quantization` of Qdrant):

- `int8`: scalar quantization with one offset and one step for every value of the collection, from the
  minimum and maximum of the sample's document values (Qdrant's `quantile` left at its default: all values),
  `127` levels; queries are encoded the same way and scored by the dot product of the decoded vectors.
  The top-k are taken from those scores; rescoring them without oversampling (Qdrant's default for int8)
  reorders the same points, so the int8 row's recall holds with or without rescoring.
- `binary`: one bit per dimension (`value > 0`), queries too, scored by Hamming distance (ties broken by
  position in the sample). With rescoring, `BINARY_OVERSAMPLING` × k candidates are taken by Hamming distance
  and re-ranked by the float32 vectors of that size, as a rescored search of a binary-quantized collection.

Memory is a documented estimate per vector (`AdviceRow`): the vectors searched in RAM (float32, or the
quantized copy: int8 adds Qdrant's 4-byte correction per vector, binary packs 8 dimensions a byte), plus the
HNSW graph's level-0 links (`2 × HNSW_M` neighbours of 4 bytes). A quantized configuration keeps its float32
originals on disk (`--on-disk`), counted apart. Payload, ids and upper graph levels are not counted.

The package: `sampling` (chunks and queries, embedded), `measure` (the numpy simulation), `store` (the
re-measure in a real collection), `result` (`Advice`, `AdviceRow`, the settings of a row: data only),
`core` (`advise()`), `plotting` (`plot`, matplotlib imported on use). `vllm_embed.cli.advise` prints the
table and the `vllm-embed ingest` flags.
"""

from vllm_embed.advise.core import advise, check_options
from vllm_embed.advise.measure import DIMENSION_LADDER, dimension_ladder, evaluate
from vllm_embed.advise.plotting import plot
from vllm_embed.advise.result import (
    HNSW_M,
    Advice,
    AdviceError,
    AdviceRow,
    Encoding,
    embedder_settings,
    recommend,
    store_settings,
)
from vllm_embed.advise.sampling import query_from_chunk
from vllm_embed.advise.store import STORES, store_recall
from vllm_embed.sinks.storage import BINARY_OVERSAMPLING

__all__ = [
    "BINARY_OVERSAMPLING",
    "DIMENSION_LADDER",
    "HNSW_M",
    "STORES",
    "Advice",
    "AdviceError",
    "AdviceRow",
    "Encoding",
    "advise",
    "check_options",
    "dimension_ladder",
    "embedder_settings",
    "evaluate",
    "plot",
    "query_from_chunk",
    "recommend",
    "store_recall",
    "store_settings",
]
