"""Ingest: documents and loaders, chunking, deterministic ids, the resumable pipeline and search."""

from vllm_embed.ingest.chunking import Chunker
from vllm_embed.ingest.documents import (
    DEFAULT_MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    Document,
    DocumentLike,
    as_document,
)
from vllm_embed.ingest.duplicates import OnDuplicate
from vllm_embed.ingest.ids import content_id, point_id
from vllm_embed.ingest.loaders import (
    DEFAULT_MAX_DOCUMENT_BYTES,
    ChainedSource,
    CsvSource,
    JsonlSource,
    ParquetSource,
    TextFilesSource,
    load_path,
    load_paths,
)
from vllm_embed.ingest.pipeline import ingest
from vllm_embed.ingest.report import IngestReport
from vllm_embed.ingest.search import require_manifest, search
from vllm_embed.ingest.verify import VerifyReport, verify_collection
from vllm_embed.sinks.base import Hit

__all__ = [
    "DEFAULT_MAX_DOCUMENT_BYTES",
    "DEFAULT_MAX_METADATA_BYTES",
    "MAX_METADATA_DEPTH",
    "ChainedSource",
    "Chunker",
    "CsvSource",
    "Document",
    "DocumentLike",
    "Hit",
    "IngestReport",
    "JsonlSource",
    "OnDuplicate",
    "ParquetSource",
    "TextFilesSource",
    "VerifyReport",
    "as_document",
    "content_id",
    "ingest",
    "load_path",
    "load_paths",
    "point_id",
    "require_manifest",
    "search",
    "verify_collection",
]
