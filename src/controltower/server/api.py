"""The admin and read API (`/api/...`, `/health`, `/metrics`, `/openapi.json`) on Starlette."""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import parse_qsl

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from controltower.errors import APIError, InvalidRequest, NotFound
from controltower.server.asgi import send_error
from controltower.server.openapi import openapi_document
from controltower.server.query_routes import QueryRoutes, json_response
from controltower.store.traces import read_failure
from controltower.tracing import ObservabilityStore, TraceWriter
from controltower.version import __version__

log = logging.getLogger("controltower.server")
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # Prometheus text format


def build_api(
    store: ObservabilityStore,
    writer: TraceWriter,
    metrics_text: Callable[[], bytes],
    extra_routes: list[BaseRoute] | None = None,
) -> Starlette:
    """The Starlette app behind every route that is not on the proxy's hot path."""

    async def health(request: Request) -> Response:
        return json_response({"status": "ok"})

    async def metrics(request: Request) -> Response:
        text = await run_in_threadpool(metrics_text)
        return Response(text, media_type=METRICS_CONTENT_TYPE)

    document: list[bytes] = []  # built on first use: the routes do not change

    async def openapi(request: Request) -> Response:
        if not document:
            document.append(orjson.dumps(openapi_document(app.routes, __version__)))
        return Response(document[0], media_type="application/json")

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, APIError)
        headers = {k.decode(): v.decode() for k, v in exc.headers()}
        return Response(
            exc.body(), status_code=exc.status, media_type="application/json", headers=headers
        )

    async def not_found(request: Request, exc: Exception) -> Response:
        error = NotFound(f"No route {request.method} {request.url.path}")
        return Response(error.body(), status_code=404, media_type="application/json")

    async def not_allowed(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        allowed = (exc.headers or {}).get("Allow", "")
        error = InvalidRequest(
            f"{request.method} is not allowed on {request.url.path}; allowed: {allowed}",
            code="method_not_allowed",
        )
        return Response(
            error.body(), 405, media_type="application/json", headers={"Allow": allowed}
        )

    routes: list[BaseRoute] = [
        Route("/health", health, include_in_schema=False),
        Route("/metrics", metrics, include_in_schema=False),
        Route("/openapi.json", openapi, include_in_schema=False),
        *QueryRoutes(store, settle=writer.flush).routes(),
        *(extra_routes or []),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(ErrorBoundary)],
        exception_handlers={APIError: api_error, 404: not_found, 405: not_allowed},
    )
    return app


class ErrorBoundary:
    """Refuses NUL characters in the URL (no database keeps them), and answers an error no
    handler caught in the OpenAI format: a store failure as 503 or 400 (see
    `store.traces.read_failure`), anything else as 500, logged. Either way the answer is
    whole, so the client's keep-alive connection stays open."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the URL, then run the app, catching what escapes it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = _nul_in_url(scope)
        if refused is not None:
            await send_error(send, refused)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            if started:  # too late for an answer: the server closes the connection
                raise
            error = read_failure(exc)
            if error is None:
                log.exception("%s %s failed", scope["method"], scope["path"])
                error = APIError("The server failed to answer this request; the error is logged")
            await send_error(send, error)


def _nul_in_url(scope: Scope) -> InvalidRequest | None:
    if "\x00" in scope["path"]:
        return InvalidRequest("The URL path must not hold NUL characters (%00)")
    query: bytes = scope.get("query_string", b"")
    if b"%00" not in query and b"\x00" not in query:
        return None
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return InvalidRequest(f"`{name}` must not hold NUL characters", param=name)
    return None
