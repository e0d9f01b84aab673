"""Running the app: bind first, then serve until SIGTERM or Ctrl-C, then drain.

The listening socket is bound before the engine starts (a port in use fails in seconds); uvicorn serves
until SIGTERM or Ctrl-C, after which it finishes the requests in flight.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any

from vllm_embed._optional import require
from vllm_embed.errors import SettingsError


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
