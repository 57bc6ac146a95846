"""The OpenAI-compatible routes, as raw ASGI handlers: the proxy path stays thin."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from controltower.errors import APIError, ModelNotAllowed, UpstreamError
from controltower.gateway import CallContext, Gateway
from controltower.providers import ChatCompletion, ChatStream
from controltower.server.asgi import (
    JSON_HEADERS,
    Receive,
    Scope,
    Send,
    read_body,
    send_bytes,
    send_error,
    send_json,
)
from controltower.server.auth import principal_of
from controltower.server.requests import caller_from, check_chat, check_embeddings, parse_object

log = logging.getLogger("controltower.server")

TRACE_HEADER = b"x-controltower-trace-id"
WATCH_AFTER_S = 0.5  # streams that run longer get watched for a client disconnect
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class OpenAIRoutes:
    """`/v1/chat/completions`, `/v1/embeddings` and `/v1/models`."""

    def __init__(self, gateway: Gateway, max_request_bytes: int) -> None:
        self.gateway = gateway
        self.max_request_bytes = max_request_bytes
        self.created = int(time.time())

    async def chat_completions(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Proxy one chat completion, whole or streamed."""
        context, body = CallContext(), None
        try:
            context = _context(scope, context.trace_id)
            body = parse_object(await read_body(scope, receive, self.max_request_bytes))
            check_chat(body)
            _check_model(scope, body)
            plan = await self.gateway.plan_chat(body, context)
        except APIError as exc:
            # refused before any provider was called: its trace id still leads to a trace
            self.gateway.record_refusal(context, body, exc)
            await send_error(send, exc, [(TRACE_HEADER, context.trace_id.encode())])
            return
        try:
            result = await self.gateway.run_chat(plan, context)
        except APIError as exc:  # traced by the gateway
            await send_error(send, exc, _headers(context))
            return
        if isinstance(result, ChatCompletion):
            await send_bytes(send, 200, result.body, [*JSON_HEADERS, *_headers(context)])
            return
        await _relay(send, receive, result, _headers(context))

    async def embeddings(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Proxy one embeddings request."""
        context, body = CallContext(), None
        try:
            context = _context(scope, context.trace_id)
            body = parse_object(await read_body(scope, receive, self.max_request_bytes))
            check_embeddings(body)
            _check_model(scope, body)
            route = self.gateway.plan_embedding(body)
        except APIError as exc:
            self.gateway.record_refusal(context, body, exc, kind="embedding")
            await send_error(send, exc, [(TRACE_HEADER, context.trace_id.encode())])
            return
        try:
            result = await self.gateway.run_embedding(route, body, context)
        except APIError as exc:  # traced by the gateway
            await send_error(send, exc, _headers(context))
            return
        await send_bytes(send, 200, result.body, [*JSON_HEADERS, *_headers(context)])

    async def models(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The model aliases and prompt references, in the OpenAI list format."""
        names = self.gateway.model_ids()
        if self.gateway.prompts is not None:
            names += self.gateway.prompts.references()
        principal = principal_of(scope)
        if principal.models:
            names = [name for name in names if principal.allows_model(name)]
        data = [
            {"id": name, "object": "model", "created": self.created, "owned_by": "controltower"}
            for name in names
        ]
        await send_json(send, 200, {"object": "list", "data": data})


def _headers(context: CallContext) -> list[tuple[bytes, bytes]]:
    """The answer's own headers: its trace id, and what the chain added (rate limits)."""
    return [(TRACE_HEADER, context.trace_id.encode()), *context.headers]


def _context(scope: Scope, trace_id: str) -> CallContext:
    """The call's context: its caller, and the project and key of its API key."""
    context = CallContext.of(caller_from(scope), trace_id)
    principal = principal_of(scope)
    if principal.project is not None:
        context.project, context.key_id = principal.project, principal.key_id
    return context


def _check_model(scope: Scope, body: dict[str, Any]) -> None:
    """403 when the API key may not call the model (alias or prompt reference) asked for."""
    principal = principal_of(scope)
    model = body.get("model")
    if principal.models and isinstance(model, str) and not principal.allows_model(model):
        allowed = ", ".join(principal.models)
        raise ModelNotAllowed(
            f"This API key may not call model {model!r}; it may call: {allowed}", param="model"
        )


async def _relay(
    send: Send, receive: Receive, stream: ChatStream, headers: list[tuple[bytes, bytes]]
) -> None:
    """Send a stream's events; a failure after the first byte ends it with an error event.

    When the client goes away, the provider's stream is closed, so that it stops
    generating (and billing) tokens nobody will read. Watching costs a task, which short
    streams would feel in their latency: it starts once a stream has run for a while.
    """
    await send({"type": "http.response.start", "status": 200, "headers": [*SSE_HEADERS, *headers]})
    loop = asyncio.get_running_loop()
    watch_from = loop.time() + WATCH_AFTER_S
    watcher: _DisconnectWatcher | None = None
    try:
        async for chunk in stream:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if watcher is None and loop.time() >= watch_from:
                watcher = _DisconnectWatcher(receive)
    except asyncio.CancelledError:
        if watcher is None or not watcher.disconnected:
            raise
        await stream.aclose()
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()  # the cancel was ours, to stop waiting on the provider
        return
    except APIError as exc:
        await _send_final(send, b"data: " + exc.body() + b"\n\n")
        return
    except OSError:  # the client went away: stop reading upstream
        await stream.aclose()
        return
    except Exception as exc:
        log.exception("stream failed")
        error = UpstreamError(f"the stream failed: {type(exc).__name__}")
        await _send_final(send, b"data: " + error.body() + b"\n\n")
        return
    finally:
        if watcher is not None:
            watcher.stop()
    await _send_final(send, b"")


class _DisconnectWatcher:
    """Cancels the current task when the client disconnects (uvicorn's send is then silent)."""

    def __init__(self, receive: Receive) -> None:
        self.disconnected = False
        self._relay = asyncio.current_task()
        self._task = asyncio.ensure_future(self._watch(receive))

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.disconnected = True
        if self._relay is not None:
            self._relay.cancel()

    def stop(self) -> None:
        """Stop watching (the stream ended on its own)."""
        self._task.cancel()


async def _send_final(send: Send, body: bytes) -> None:
    with contextlib.suppress(OSError):
        await send({"type": "http.response.body", "body": body, "more_body": False})
