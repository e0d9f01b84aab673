"""`vllm-embed serve`: the Embedder (a Reranker, a SparseEmbedder) behind OpenAI, TEI and Cohere routes.

Its engine, cache and long-input flags are the other commands' (`embedder_options`); its limits come from
`ServeLimits`. The socket is bound and the settings checked before the engine's minute of start-up; the
sparse model, whose architecture is checked as it is built, starts first.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from vllm_embed.cli.engine_options import EngineSettings, embedder_options, flag_parameters, options_as
from vllm_embed.cli.output import err, user_errors
from vllm_embed.cli.token_models import start_sparse
from vllm_embed.config import EmbedderConfig
from vllm_embed.serve.settings import DEFAULT_PORT, ServeLimits

if TYPE_CHECKING:
    pass

API_KEY_VARIABLES = ("VLLM_EMBED_API_KEY", "VLLM_API_KEY")
"""Where `serve` reads its key without `--api-key`: ours (which our client reads too), then vLLM's."""

LIMITS_PANEL = "Server limits"


@options_as("limits", flag_parameters(ServeLimits, not_flags={}, panel=LIMITS_PANEL))
@embedder_options(skip=("dimensions",))
def serve(
    settings: EngineSettings,
    limits: dict[str, Any],
    rerank_model: Annotated[
        str | None,
        typer.Option(
            "--rerank-model",
            help="Also serve /rerank with this reranker (a Qwen3-Reranker or a cross-encoder), run in this "
            "process with the same --dtype and parallelism.",
            show_default=False,
        ),
    ] = None,
    sparse_model: Annotated[
        str | None,
        typer.Option(
            "--sparse-model",
            help="Also serve TEI's /embed_sparse with this learned sparse model (SPLADE or BGE-M3), run in "
            "this process with the same --dtype, parallelism and --long-input.",
            show_default=False,
        ),
    ] = None,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (0.0.0.0 for every interface).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")] = DEFAULT_PORT,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar=list(API_KEY_VARIABLES),
            show_envvar=True,
            show_default=False,
            help="Require 'Authorization: Bearer <key>' on every route but /health and /metrics. Prefer the "
            "environment variable: a flag is visible to other users in the process list.",
        ),
    ] = None,
    served_model_name: Annotated[
        str | None,
        typer.Option(
            "--served-model-name",
            help="The model name clients pass \\[default: --model as given].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve the model over HTTP: OpenAI /v1/embeddings, Cohere /v2/embed, TEI /embed, /rerank, /metrics.

    Concurrent requests share the engine's batches. SIGTERM or Ctrl-C stops accepting, answers the requests
    in flight, then stops the engine.
    """
    from vllm_embed.cli import _say_engine_starts
    from vllm_embed.cli.commands import _start_reranker
    from vllm_embed.serve import server

    with user_errors():
        config = EmbedderConfig(**settings)
        server_limits = ServeLimits(**limits)
        sock = server.bind(host, port)
        with sock, ExitStack() as engines:
            from vllm_embed.embedder import Embedder
            from vllm_embed.serve.app import create_app

            server.reserve_a_core_for_http()
            sparse = (
                None
                if sparse_model is None
                else engines.enter_context(start_sparse({"model": sparse_model}, config))
            )
            _say_engine_starts(config.model, config.backend)
            embedder = engines.enter_context(Embedder(config=config))
            reranker = None
            if rerank_model is not None:
                reranker = engines.enter_context(_start_reranker(rerank_model, config))
            app = create_app(
                embedder,
                reranker,
                sparse=sparse,
                served_model_name=served_model_name,
                api_key=api_key,
                limits=server_limits,
            )
            bound_host, bound_port = sock.getsockname()[:2]
            name = served_model_name or config.model
            err.print(
                f"serving {escape(name)} on http://{escape(str(bound_host))}:{bound_port} "
                f"(/v1/embeddings, /v2/embed, /embed{', /embed_sparse' if sparse else ''}, /rerank, "
                "/metrics); Ctrl-C or SIGTERM stops it after the requests in flight",
                highlight=False,
            )
            server.run(app, sock)
