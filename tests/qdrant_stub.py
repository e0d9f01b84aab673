"""A recording stand-in for a Qdrant server: the REST endpoints `QdrantSink` uses, on a real socket.

Every request qdrant-client sends is recorded (method, path, query, JSON body). The points themselves are
kept by a Qdrant local-mode (`:memory:`) client, so ingest, resume and search behave as on a server; the
collection config a server would report (quantization, HNSW, on-disk, shards) and the payload indexes are
the ones the requests asked for, which local mode would otherwise drop.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, TypeAdapter
from qdrant_client import QdrantClient
from qdrant_client.http import models


@dataclass(frozen=True)
class Recorded:
    """One request the stub received."""

    method: str
    path: str
    query: dict[str, str]
    body: Any


@dataclass
class _Collection:
    create: models.CreateCollection
    payload_schema: dict[str, str] = field(default_factory=dict)


class _NotFoundError(Exception):
    pass


class QdrantStub:
    """Serves the Qdrant REST API subset `QdrantSink` calls, on 127.0.0.1 in a thread.

    Attributes:
        requests: Every request received, in order.
        url: The server URL to give `QdrantSink(url=...)`.
    """

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._store = QdrantClient(location=":memory:")
        self._collections: dict[str, _Collection] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stops the server and drops the stored collections."""
        self._server.shutdown()
        self._server.server_close()
        self._store.close()

    def __enter__(self) -> QdrantStub:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def calls(self, method: str, pattern: str) -> list[Recorded]:
        """The recorded requests with `method` whose path matches the regular expression `pattern`."""
        return [r for r in self.requests if r.method == method and re.fullmatch(pattern, r.path)]

    # -- the API ------------------------------------------------------------------------------------

    def _answer(self, method: str, path: str, body: Any) -> Any:
        parts = [p for p in path.split("/") if p]
        if not parts:
            return {"title": "qdrant - vector search engine", "version": version("qdrant-client")}
        if parts == ["collections"]:
            return {"collections": [{"name": name} for name in self._collections]}
        name, rest = parts[1], "/".join(parts[2:])
        route = (method, rest)
        if route == ("GET", "exists"):
            return {"exists": name in self._collections}
        if route == ("PUT", ""):
            create = models.CreateCollection.model_validate(body)
            self._store.create_collection(
                name,
                vectors_config=create.vectors,
                sparse_vectors_config=create.sparse_vectors,
                metadata=create.metadata,
            )
            self._collections[name] = _Collection(create)
            return True
        collection = self._collections.get(name)
        if collection is None:
            raise _NotFoundError(f"Not found: Collection `{name}` doesn't exist!")
        if route == ("GET", ""):
            return self._info(name, collection)
        if route == ("PATCH", ""):
            update = models.UpdateCollection.model_validate(body)
            if update.metadata is not None:
                self._store.update_collection(name, metadata=update.metadata)
            return True
        if route == ("PUT", "index"):
            index = models.CreateFieldIndex.model_validate(body)
            schema = index.field_schema
            collection.payload_schema[index.field_name] = str(getattr(schema, "value", schema))
            return _update_result()
        return self._points(name, route, body)

    def _points(self, name: str, route: tuple[str, str], body: Any) -> Any:
        store = self._store
        if route == ("PUT", "points"):
            operation: Any = TypeAdapter(models.PointInsertOperations).validate_python(body)
            points = operation.batch if isinstance(operation, models.PointsBatch) else operation.points
            store.upsert(name, points=points)
            return _update_result()
        if route == ("POST", "points"):
            request = models.PointRequest.model_validate(body)
            return store.retrieve(
                name,
                ids=request.ids,
                with_payload=request.with_payload if request.with_payload is not None else True,
                with_vectors=request.with_vector if request.with_vector is not None else False,
            )
        if route == ("PUT", "points/vectors"):
            store.update_vectors(name, points=models.UpdateVectors.model_validate(body).points)
            return _update_result()
        if route == ("POST", "points/delete"):
            selector: Any = TypeAdapter(models.PointsSelector).validate_python(body)
            store.delete(name, points_selector=selector)
            return _update_result()
        if route == ("POST", "points/count"):
            count = models.CountRequest.model_validate(body)
            return store.count(name, count_filter=count.filter, exact=True)
        if route == ("POST", "points/scroll"):
            scroll = models.ScrollRequest.model_validate(body)
            points, offset = store.scroll(
                name,
                scroll_filter=scroll.filter,
                limit=scroll.limit or 10,
                offset=scroll.offset,
                with_payload=scroll.with_payload if scroll.with_payload is not None else True,
                with_vectors=scroll.with_vector if scroll.with_vector is not None else False,
            )
            return {"points": points, "next_page_offset": offset}
        if route == ("POST", "points/query"):
            return self._query(name, models.QueryRequest.model_validate(body))
        if route == ("POST", "points/query/batch"):
            batch = models.QueryRequestBatch.model_validate(body)
            return [self._query(name, request) for request in batch.searches]
        raise _NotFoundError(f"the Qdrant stub does not serve {route[0]} /collections/{name}/{route[1]}")

    def _query(self, name: str, request: models.QueryRequest) -> models.QueryResponse:
        # `params` (HNSW ef, quantization) is only recorded: local mode searches exactly anyway
        return self._store.query_points(
            name,
            query=request.query,
            using=request.using,
            prefetch=request.prefetch,
            query_filter=request.filter,
            limit=request.limit or 10,
            offset=request.offset,
            with_payload=request.with_payload if request.with_payload is not None else False,
            with_vectors=request.with_vector if request.with_vector is not None else False,
        )

    def _info(self, name: str, collection: _Collection) -> models.CollectionInfo:
        """What a server reports: the stored points, with the config and indexes the requests asked for."""
        info = self._store.get_collection(name)
        create = collection.create
        hnsw = info.config.hnsw_config.model_copy(
            update=(create.hnsw_config.model_dump(exclude_none=True) if create.hnsw_config else {})
        )
        params = info.config.params.model_copy(
            update={
                "vectors": create.vectors,
                "shard_number": create.shard_number or 1,
                "replication_factor": create.replication_factor or 1,
            }
        )
        config = info.config.model_copy(
            update={"params": params, "hnsw_config": hnsw, "quantization_config": create.quantization_config}
        )
        schema = {
            key: models.PayloadIndexInfo(data_type=models.PayloadSchemaType(kind), points=0)
            for key, kind in collection.payload_schema.items()
        }
        return info.model_copy(update={"config": config, "payload_schema": schema})

    # -- HTTP ---------------------------------------------------------------------------------------

    def _handle(self, method: str, target: str, raw: bytes) -> tuple[int, bytes]:
        parts = urlsplit(target)
        body = json.loads(raw) if raw else None
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        with self._lock:
            self.requests.append(Recorded(method, parts.path, query, body))
            try:
                result = self._answer(method, parts.path, body)
            except _NotFoundError as exc:
                return 404, json.dumps({"status": {"error": str(exc)}, "time": 0.0}).encode()
            except Exception as exc:  # noqa: BLE001 - a request the real server would refuse too
                return 400, json.dumps({"status": {"error": repr(exc)}, "time": 0.0}).encode()
        if not parts.path.strip("/"):
            return 200, json.dumps(result).encode()
        return 200, json.dumps({"result": _jsonable(result), "status": "ok", "time": 0.0}).encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                status, payload = stub._handle(self.command, self.path, self.rfile.read(length))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def _update_result() -> models.UpdateResult:
    return models.UpdateResult(operation_id=0, status=models.UpdateStatus.COMPLETED)


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


@contextlib.contextmanager
def qdrant_stub() -> Iterator[QdrantStub]:
    """A running `QdrantStub`, stopped on exit."""
    stub = QdrantStub()
    try:
        yield stub
    finally:
        stub.close()
