"""Running the app: bind first, then serve until SIGTERM or Ctrl-C, then drain.

The listening socket is bound before the engine starts (a port in use fails in seconds); uvicorn serves
until SIGTERM or Ctrl-C, after which it finishes the requests in flight.
"""

from __future__ import annotations

import contextlib
import os
import socket
from typing import Any

from vllm_embed._optional import require
from vllm_embed.errors import SettingsError


def reserve_a_core_for_http() -> None:
    """Keeps one CPU core out of vLLM's CPU worker threads (its default; the Embedder lifts it on small CPUs).

    In-process batch embedding gains from computing on every core of a 2-core machine, but a server's event
    loop and engine thread need a core of their own: with the worker threads pinned to both, each request
    waits on them, and `benchmarks/bench_serve.py` measured 4-12x fewer requests/s. A value the user set wins.
    """
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "1")


def bind(host: str, port: int) -> socket.socket:
    """Binds the server's socket now, so a taken port or a wrong host fails before the engine starts.

    Raises:
        SettingsError: If the address cannot be bound (the message names the flag to change).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SettingsError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); pass another --port or --host"
        ) from None
    sock.set_inheritable(True)
    return sock


def run(app: Any, sock: socket.socket) -> None:
    """Serves `app` on the bound socket until SIGTERM or SIGINT.

    Returns once the requests in flight are answered (uvicorn stops accepting, drains, then returns).
    """
    uvicorn = require("uvicorn", "vllm-embed serve")
    config = uvicorn.Config(
        app,
        lifespan="off",
        access_log=False,  # a line per request costs throughput; /metrics counts them
        log_level="warning",
        timeout_graceful_shutdown=None,  # drain every request in flight, however long
        server_header=False,
    )
    server = uvicorn.Server(config)
    # uvicorn re-raises the signal it handled once it has drained; the CLI's handler turns that into
    # KeyboardInterrupt, which here only means "stopped as asked".
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])
