"""Small raw-ASGI helpers for the hot routes: read a bounded body, send JSON and errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from controltower.errors import APIError, RequestTooLarge

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

JSON_HEADERS: Headers = [(b"content-type", b"application/json")]


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body, or RequestTooLarge past `limit` bytes."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            if value.isdigit() and int(value) > limit:
                raise _too_large(limit)
            break
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        if len(body) > limit:
            raise _too_large(limit)
        return body
    parts = [body]
    size = len(body)
    while message.get("more_body"):
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        parts.append(chunk)
    return b"".join(parts)


def _too_large(limit: int) -> RequestTooLarge:
    return RequestTooLarge(
        f"The request body is larger than the gateway's limit of {limit} bytes; "
        "send less, or raise max_request_bytes in the config"
    )


async def send_bytes(send: Send, status: int, body: bytes, headers: Headers) -> None:
    """Send a whole response with content-length."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_json(send: Send, status: int, data: Any, headers: Headers | None = None) -> None:
    """Send a JSON response."""
    await send_bytes(send, status, orjson.dumps(data), [*JSON_HEADERS, *(headers or ())])


async def send_error(send: Send, error: APIError, headers: Headers | None = None) -> None:
    """Send an error in the OpenAI format with its status."""
    await send_bytes(
        send, error.status, error.body(), [*JSON_HEADERS, *error.headers(), *(headers or ())]
    )


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of a request header (name in lower case)."""
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]
    return None
