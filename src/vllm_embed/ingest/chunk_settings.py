"""The chunking of an ingest run: its chunker, and its record in the collection's manifest.

The chunker's default size and its budget for the Embedder's prompt and special tokens are decided here.
"""

from __future__ import annotations

from typing import Any

from vllm_embed.ingest.embedder_api import SupportsEmbedding
from vllm_embed.ingest.splitters import DEFAULT_CHUNK_TOKENS, DocumentChunker, SplitterLike, splitter_name
from vllm_embed.sinks.base import Manifest, ManifestMismatchError, Sink


def make_chunker(
    embedder: SupportsEmbedding,
    *,
    chunk_tokens: int | None = None,
    chunk_overlap: int = 0,
    splitter: SplitterLike | None = None,
) -> DocumentChunker:
    """Returns the chunker `ingest` uses with `embedder`: its tokenizer, prompt and special tokens.

    Args:
        embedder: The `Embedder`.
        chunk_tokens: Longest model input per chunk; `None` for `DEFAULT_CHUNK_TOKENS`, or the model's
            longest input when smaller.
        chunk_overlap: Tokens shared by consecutive chunks.
        splitter: As for `ingest`.
    """
    max_input = embedder.max_input_tokens
    max_len: int | None = getattr(embedder, "max_model_len", None) or max_input
    special = max_len - max_input if max_len is not None and max_input is not None else 0
    if chunk_tokens is None:
        chunk_tokens = DEFAULT_CHUNK_TOKENS if max_len is None else min(DEFAULT_CHUNK_TOKENS, max_len)
    return DocumentChunker(
        embedder.tokenizer,
        chunk_tokens=chunk_tokens,
        chunk_overlap=chunk_overlap,
        splitter=splitter,
        special_tokens=special,
        format_document=getattr(embedder, "format_document", None),
    )


def chunking_fields(chunker: DocumentChunker) -> dict[str, Any]:
    """The chunking settings of `chunker`, as the manifest records them."""
    return {
        "splitter": "text" if chunker.splitter is None else splitter_name(chunker.splitter),
        "chunk_tokens": chunker.chunk_tokens,
        "chunk_overlap": chunker.chunk_overlap,
    }


def check_chunking(stored: Manifest, run: Manifest, collection: str, *, rechunk: bool) -> bool:
    """Refuses other chunking than the collection's unless `rechunk`; returns whether to record `run`'s.

    Fields of `run` that are `None` are not compared (the CLI checks what it knows before the engine).

    Raises:
        ManifestMismatchError: Naming both sides and the two ways out.
    """
    differences = stored.chunking_mismatches(run)
    if differences and not rechunk:
        raise ManifestMismatchError(
            f"collection {collection!r} was chunked differently ({'; '.join(differences)}): pass the "
            "collection's chunking (--splitter/--chunk-tokens/--chunk-overlap, or splitter=/chunk_tokens=/"
            "chunk_overlap=), or --rechunk (rechunk=True) to replace the chunks of the documents you ingest"
        )
    return bool(differences) or stored.splitter is None


def record_chunking(sink: Sink, manifest: Manifest, *, rechunk: bool) -> None:
    """Checks this run's chunking against the collection's and records it when new or replaced.

    Raises:
        ManifestMismatchError: For other chunking without `rechunk`.
    """
    stored = sink.read_manifest()
    if stored is None or not check_chunking(stored, manifest, sink.collection, rechunk=rechunk):
        return
    # Everything else in the stored manifest (e.g. settings other features record) is kept.
    sink.write_manifest(
        stored.model_copy(update={name: getattr(manifest, name) for name in Manifest._CHUNKING})
    )
