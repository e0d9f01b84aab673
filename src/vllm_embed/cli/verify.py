"""`vllm-embed verify`: find stored vectors no search can use (non-finite, zero, wrong length)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from vllm_embed.cli.commands import (
    ApiKeyOpt,
    CollectionOpt,
    MilvusOpt,
    QdrantEdgeOpt,
    QdrantOpt,
    _closing,
    _open_sink,
    _start_engine,
)
from vllm_embed.cli.engine_options import EngineSettings, embedder_options
from vllm_embed.cli.output import fail, out, user_errors
from vllm_embed.config import EmbedderConfig
from vllm_embed.ingest.search import require_manifest
from vllm_embed.ingest.verify import verify_collection


@embedder_options(skip=("model", "dimensions", "query_instruction"))
def verify(
    collection: CollectionOpt,
    settings: EngineSettings,
    qdrant: QdrantOpt = None,
    qdrant_edge: QdrantEdgeOpt = None,
    milvus: MilvusOpt = None,
    api_key: ApiKeyOpt = None,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair", help="Re-embed the stored text of every invalid point (with the manifest's model)."
        ),
    ] = False,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Points read (and re-embedded) at a time.")
    ] = 256,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")] = False,
) -> None:
    """Scan a collection for unusable vectors; with --repair, re-embed them.

    Exits with status 1 when invalid vectors remain (none found, or all repaired: 0), so scripts can check.
    The engine starts only with --repair and only when something needs repairing.
    """
    with user_errors():
        sink = _open_sink(qdrant, milvus, collection, api_key, qdrant_edge=qdrant_edge)
        with _closing(sink):
            report = verify_collection(sink, batch_size=batch_size)
            if repair and report.invalid:
                manifest = require_manifest(sink)
                config = EmbedderConfig(model=manifest.model, dimensions=manifest.dimensions, **settings)
                embedder = _start_engine(config)
                with _closing(embedder):
                    report = verify_collection(sink, embedder, repair=True, batch_size=batch_size)
    if as_json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        out.print(str(report))
    remaining = report.invalid - report.repaired
    if remaining:
        hint = "" if repair else "; run again with --repair to re-embed them"
        if report.unrepairable:
            hint = f"; {report.unrepairable} have no stored text to re-embed: re-ingest their documents"
        fail(f"{remaining} point(s) of {collection!r} have unusable vectors{hint}")
