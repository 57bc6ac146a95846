"""Cheap checks of OpenAI-format request bodies and of the caller's trace headers."""

from __future__ import annotations

from typing import Any

import orjson

from controltower.errors import InvalidRequest
from controltower.gateway import Caller
from controltower.server.asgi import Scope

_CALLER_HEADERS = {
    b"x-controltower-user": "user_id",
    b"x-controltower-session": "session_id",
    b"x-controltower-tags": "tags",
    b"x-controltower-metadata": "metadata",
    b"traceparent": "traceparent",
}
_HEX = frozenset("0123456789abcdef")


def parse_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 400 that says what is wrong."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object")
    return body


def check_chat(body: dict[str, Any]) -> None:
    """Reject chat bodies that no provider could answer, naming the field."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("`model` is required and must be a string", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        # a prompt reference brings its own messages (more may follow them)
        if not (model.startswith("prompt:") and (messages is None or messages == [])):
            raise InvalidRequest("`messages` must be a non-empty array", param="messages")
        messages = ()
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidRequest(
                f"`messages[{i}]` must be an object with a string `role`", param=f"messages[{i}]"
            )
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest("`stream` must be a boolean", param="stream")
    n = body.get("n")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise InvalidRequest("`n` must be a whole number of at least 1", param="n")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidRequest("`stream_options` must be an object", param="stream_options")


def check_embeddings(body: dict[str, Any]) -> None:
    """Reject embedding bodies without a model or with an input of the wrong type."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidRequest("`model` is required and must be a string", param="model")
    data = body.get("input")
    ok = isinstance(data, str) or (
        isinstance(data, list) and data and all(isinstance(x, str | int | list) for x in data)
    )
    if not ok:
        raise InvalidRequest(
            "`input` must be a string or a non-empty array of strings or tokens", param="input"
        )


def caller_from(scope: Scope) -> Caller:
    """User, session, tags and metadata from the x-controltower-* headers, and traceparent."""
    caller = Caller()
    for name, value in scope["headers"]:
        field = _CALLER_HEADERS.get(name)
        if field is None:
            continue
        text = value.decode("utf-8", "replace")
        if field == "traceparent":
            _continue_trace(caller, text)
        elif field == "tags":
            caller.tags = [t.strip() for t in text.split(",") if t.strip()]
        elif field == "metadata":
            caller.metadata = _metadata(text)
        else:
            setattr(caller, field, text)
    return caller


def _continue_trace(caller: Caller, text: str) -> None:
    # W3C trace context: version-traceid-parentid-flags; a malformed header is ignored
    # (the call starts a trace of its own), as the specification asks
    parts = text.strip().split("-")
    if len(parts) < 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return
    trace_id, span_id = parts[1], parts[2]
    if not (set(trace_id) <= _HEX and set(span_id) <= _HEX) or parts[0] == "ff":
        return
    if trace_id == "0" * 32 or span_id == "0" * 16:
        return
    caller.trace_id, caller.parent_span_id = trace_id, span_id


def _metadata(text: str) -> dict[str, Any]:
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise InvalidRequest(
            "The x-controltower-metadata header must be a JSON object, "
            'for example {"feature": "search"}',
            param="x-controltower-metadata",
        )
    return data
