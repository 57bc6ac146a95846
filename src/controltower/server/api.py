"""The admin and read API (`/api/...`, `/health`, `/metrics`) on Starlette."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from controltower.errors import APIError, InvalidRequest, NotFound
from controltower.tracing import TraceReader, TraceWriter


class _JSON(JSONResponse):
    """JSON responses encoded with orjson (traces hold large payloads)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def build_api(
    reader: TraceReader, writer: TraceWriter, extra_routes: list[BaseRoute] | None = None
) -> Starlette:
    """The Starlette app behind every route that is not on the proxy's hot path."""

    async def health(request: Request) -> Response:
        return _JSON({"status": "ok"})

    async def metrics(request: Request) -> Response:
        stats = writer.stats
        lines = [
            "# TYPE controltower_traces_enqueued_total counter",
            f"controltower_traces_enqueued_total {stats.enqueued}",
            "# TYPE controltower_traces_written_total counter",
            f"controltower_traces_written_total {stats.written}",
            "# TYPE controltower_traces_dropped_total counter",
            f"controltower_traces_dropped_total {stats.dropped}",
            "# TYPE controltower_trace_write_failures_total counter",
            f"controltower_trace_write_failures_total {stats.failed_writes}",
            "# TYPE controltower_trace_queue_depth gauge",
            f"controltower_trace_queue_depth {writer.queue_depth}",
        ]
        return Response("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")

    async def list_traces(request: Request) -> Response:
        limit = _int(request.query_params.get("limit"), "limit", 50)
        cursor = request.query_params.get("cursor") or None
        data, next_cursor = await run_in_threadpool(reader.list_traces, limit, cursor)
        return _JSON({"data": data, "next_cursor": next_cursor})

    async def get_trace(request: Request) -> Response:
        trace_id = request.path_params["trace_id"]
        trace = await run_in_threadpool(reader.get_trace, trace_id)
        if trace is None:
            raise NotFound(f"No trace with id {trace_id!r}", param="trace_id")
        return _JSON(trace)

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, APIError)
        return Response(exc.body(), status_code=exc.status, media_type="application/json")

    async def not_found(request: Request, exc: Exception) -> Response:
        error = NotFound(f"No route {request.method} {request.url.path}")
        return Response(error.body(), status_code=404, media_type="application/json")

    routes = [
        Route("/health", health),
        Route("/metrics", metrics),
        Route("/api/traces", list_traces),
        Route("/api/traces/{trace_id}", get_trace),
        *(extra_routes or []),
    ]
    return Starlette(routes=routes, exception_handlers={APIError: api_error, 404: not_found})


def _int(value: str | None, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise InvalidRequest(
            f"`{name}` must be a whole number, got {value!r}", param=name
        ) from None
