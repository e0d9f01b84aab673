"""A small OpenAI-compatible embeddings server on a real socket, scriptable to fail or misbehave.

A scripted `Reply` is either an error status, or a 200 that is hostile: a body rewritten from the normal
one (duplicate indexes, NaN, an echoed API key), sent one byte at a time, or padded to any size.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

STUB_MODEL = "stub-model"
STUB_DIMENSION = 16


def stub_vector(text: str, dimension: int = STUB_DIMENSION) -> np.ndarray:
    """The (unnormalised) vector the stub returns for a text: a seeded random draw."""
    rng = np.random.default_rng(zlib.crc32(text.encode("utf-8")))
    return rng.standard_normal(dimension).astype(np.float32)


Mangle = Callable[[list[dict[str, Any]], str | None], Any]
"""Builds the body to send from the normal `data` entries (in input order) and the request's Authorization."""


@dataclass
class Reply:
    """A scripted answer to one POST /v1/embeddings: an error (status >= 400), or a hostile 200."""

    status: int = 200
    message: str = "scripted failure"
    headers: dict[str, str] = field(default_factory=dict)
    mangle: Mangle | None = None
    trickle: float = 0.0
    """Seconds to wait between the bytes of the body (0: send it at once)."""
    padding: int = 0
    """Bytes of whitespace appended after the JSON (still valid JSON)."""
    declare_length: bool = True
    """Send `Content-Length`; otherwise the body ends when the server closes the connection."""


class StubServer:
    """Serves `/v1/models` and `/v1/embeddings` on 127.0.0.1 in a thread.

    Attributes:
        script: Replies consumed one per embeddings request, before answering normally.
        requests: JSON bodies (and `Authorization` header) of every embeddings request seen.
    """

    def __init__(
        self,
        *,
        accept_base64: bool = True,
        honour_dimensions: bool = False,
        delay: float = 0.0,
        echo_authorization_in_errors: bool = False,
    ) -> None:
        self.accept_base64 = accept_base64
        self.honour_dimensions = honour_dimensions
        self.delay = delay
        self.echo_authorization = echo_authorization_in_errors
        self.script: deque[Reply] = deque()
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def reset(self, *replies: Reply) -> None:
        """Forgets the requests seen so far and scripts the next replies."""
        with self._lock:
            self.requests.clear()
            self.script = deque(replies)
            self.max_in_flight = 0

    def stop(self) -> None:
        """Stops serving and closes the listening socket (clients then get 'connection refused')."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        with self._lock:
            connections, self._connections = list(self._connections), set()
        for connection in connections:  # kept-alive connections would otherwise still be served
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                with stub._lock:
                    stub._connections.add(self.connection)

            def finish(self) -> None:
                with stub._lock:
                    stub._connections.discard(self.connection)
                super().finish()

            def _send(
                self,
                status: int,
                body: Any,
                headers: dict[str, str] | None = None,
                reply: Reply | None = None,
            ) -> None:
                data = json.dumps(body).encode("utf-8")
                reply = reply or Reply(status)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if reply.declare_length:
                    self.send_header("Content-Length", str(len(data) + reply.padding))
                else:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                try:
                    if reply.trickle:
                        for byte in range(len(data)):
                            self.wfile.write(data[byte : byte + 1])
                            self.wfile.flush()
                            time.sleep(reply.trickle)
                    else:
                        self.wfile.write(data)
                    for start in range(0, reply.padding, 1 << 16):
                        self.wfile.write(b" " * min(1 << 16, reply.padding - start))
                except OSError:  # the client gave up on this answer
                    self.close_connection = True

            def do_GET(self) -> None:
                if self.path == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": STUB_MODEL, "max_model_len": 128}]})
                else:
                    self._send(404, {"detail": "Not Found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path != "/v1/embeddings":
                    self._send(404, {"detail": "Not Found"})
                    return
                with stub._lock:
                    stub.requests.append({**body, "authorization": self.headers.get("Authorization")})
                    reply = stub.script.popleft() if stub.script else None
                    stub.in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                try:
                    time.sleep(stub.delay)
                    self._answer(body, reply)
                finally:
                    with stub._lock:
                        stub.in_flight -= 1

            def _answer(self, body: dict[str, Any], reply: Reply | None) -> None:
                if reply is not None and reply.status >= 400:
                    message = reply.message
                    if stub.echo_authorization:
                        message += f" (you sent {self.headers.get('Authorization')})"
                    error = {"message": message, "type": "BadRequestError", "code": reply.status}
                    self._send(reply.status, {"error": error}, reply.headers)
                    return
                if body.get("model") != STUB_MODEL:
                    missing = f"The model `{body.get('model')}` does not exist."
                    self._send(404, {"error": {"message": missing}})
                    return
                encoding = body.get("encoding_format", "float")
                if encoding == "base64" and not stub.accept_base64:
                    self._send(422, {"error": "encoding_format: unknown variant `base64`"})
                    return
                dimensions = body.get("dimensions")
                if dimensions is not None and not stub.honour_dimensions:
                    self._send(400, {"error": {"message": "this model does not support `dimensions`"}})
                    return
                data = []
                for index, text in enumerate(body["input"]):
                    vector = stub_vector(text)[: dimensions or STUB_DIMENSION]
                    embedding: Any = (
                        base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
                        if encoding == "base64"
                        else vector.tolist()
                    )
                    data.append({"object": "embedding", "index": index, "embedding": embedding})
                if reply is not None and reply.mangle is not None:
                    answer = reply.mangle(data, self.headers.get("Authorization"))
                else:
                    answer = {"object": "list", "model": STUB_MODEL, "data": data[::-1]}
                self._send(200, answer, reply=reply)

        return Handler
