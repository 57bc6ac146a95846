"""The admin and read API (`/api/...`, `/health`, `/metrics`, `/openapi.json`) on Starlette."""

from __future__ import annotations

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.schemas import SchemaGenerator

from controltower.errors import APIError, NotFound
from controltower.server.query_routes import QueryRoutes, json_response
from controltower.tracing import ObservabilityStore, TraceWriter
from controltower.version import __version__

_SCHEMA = SchemaGenerator(
    {
        "openapi": "3.0.3",
        "info": {"title": "controltower API", "version": __version__},
    }
)


def build_api(
    store: ObservabilityStore, writer: TraceWriter, extra_routes: list[BaseRoute] | None = None
) -> Starlette:
    """The Starlette app behind every route that is not on the proxy's hot path."""

    async def health(request: Request) -> Response:
        return json_response({"status": "ok"})

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

    async def openapi(request: Request) -> Response:
        schema = _SCHEMA.get_schema(routes=app.routes)
        # YAML reads status codes as integers; OpenAPI wants them as strings
        body = orjson.dumps(schema, option=orjson.OPT_NON_STR_KEYS)
        return Response(body, media_type="application/json")

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, APIError)
        headers = {k.decode(): v.decode() for k, v in exc.headers()}
        return Response(
            exc.body(), status_code=exc.status, media_type="application/json", headers=headers
        )

    async def not_found(request: Request, exc: Exception) -> Response:
        error = NotFound(f"No route {request.method} {request.url.path}")
        return Response(error.body(), status_code=404, media_type="application/json")

    routes: list[BaseRoute] = [
        Route("/health", health, include_in_schema=False),
        Route("/metrics", metrics, include_in_schema=False),
        Route("/openapi.json", openapi, include_in_schema=False),
        *QueryRoutes(store).routes(),
        *(extra_routes or []),
    ]
    app = Starlette(routes=routes, exception_handlers={APIError: api_error, 404: not_found})
    return app
