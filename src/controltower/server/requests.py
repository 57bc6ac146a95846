"""Cheap checks of OpenAI-format request bodies and of the caller's trace headers."""

from __future__ import annotations

import math
from collections.abc import Callable
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
    b"cache-control": "cache_control",
}
_HEX = frozenset("0123456789abcdef")


def _is_number(value: Any) -> bool:
    # bool is an int in Python, but true is no temperature
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_count(value: Any) -> bool:
    return _is_int(value) and value >= 1


def _is_stop(value: Any) -> bool:
    return isinstance(value, str) or (
        isinstance(value, list) and all(isinstance(item, str) for item in value)
    )


def _is_tool_choice(value: Any) -> bool:
    return isinstance(value, str | dict)


def _of(kind: type | tuple[type, ...]) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, kind)


# known parameters: the check of a value (null is always allowed) and what it must be
Check = tuple[Callable[[Any], bool], str]
_NUMBER: Check = (_is_number, "a number")
_INTEGER: Check = (_is_int, "an integer")
_COUNT: Check = (_is_count, "a whole number of at least 1")
_BOOLEAN: Check = (_of(bool), "a boolean (true or false)")
_STRING: Check = (_of(str), "a string")
_OBJECT: Check = (_of(dict), "an object")
_ARRAY: Check = (_of(list), "an array")
CHAT_PARAMETERS: dict[str, Check] = {
    "temperature": _NUMBER,
    "top_p": _NUMBER,
    "presence_penalty": _NUMBER,
    "frequency_penalty": _NUMBER,
    "max_tokens": _COUNT,
    "max_completion_tokens": _COUNT,
    "n": _COUNT,
    "seed": _INTEGER,
    "top_logprobs": _INTEGER,
    "stream": _BOOLEAN,
    "logprobs": _BOOLEAN,
    "parallel_tool_calls": _BOOLEAN,
    "store": _BOOLEAN,
    "user": _STRING,
    "service_tier": _STRING,
    "reasoning_effort": _STRING,
    "stop": (_is_stop, "a string or an array of strings"),
    "logit_bias": _OBJECT,
    "response_format": _OBJECT,
    "stream_options": _OBJECT,
    "metadata": _OBJECT,
    "variables": _OBJECT,
    "tools": _ARRAY,
    "functions": _ARRAY,
    "modalities": _ARRAY,
    "tool_choice": (_is_tool_choice, "a string or an object"),
}
EMBEDDING_PARAMETERS: dict[str, Check] = {
    "dimensions": _COUNT,
    "encoding_format": _STRING,
    "user": _STRING,
}


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
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise InvalidRequest(
                f"`messages[{i}].content` must be a string or an array of content parts",
                param=f"messages[{i}].content",
            )
        if isinstance(content, list):
            _check_parts(content, f"messages[{i}].content")
        _check_message_fields(message, f"messages[{i}]")
    check_parameters(body, CHAT_PARAMETERS)


def _check_parts(parts: list[Any], where: str) -> None:
    for j, part in enumerate(parts):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise InvalidRequest(
                f"`{where}[{j}]` must be an object with a string `type`", param=f"{where}[{j}]"
            )
        if part["type"] == "text" and not isinstance(part.get("text"), str):
            raise InvalidRequest(
                f"`{where}[{j}].text` must be a string", param=f"{where}[{j}].text"
            )


def _check_message_fields(message: dict[str, Any], where: str) -> None:
    for key in ("name", "tool_call_id"):
        if message.get(key) is not None and not isinstance(message[key], str):
            raise InvalidRequest(f"`{where}.{key}` must be a string", param=f"{where}.{key}")
    calls = message.get("tool_calls")
    if calls is None:
        return
    if not isinstance(calls, list):
        raise InvalidRequest(f"`{where}.tool_calls` must be an array", param=f"{where}.tool_calls")
    for k, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        ok = isinstance(function, dict) and isinstance(function.get("name"), str)
        if ok and function is not None:
            ok = isinstance(function.get("arguments", ""), str)
        if not ok:
            raise InvalidRequest(
                f"`{where}.tool_calls[{k}]` must be an object with a `function` holding a "
                "string `name` and string `arguments`",
                param=f"{where}.tool_calls[{k}]",
            )


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
    check_parameters(body, EMBEDDING_PARAMETERS)


def check_parameters(body: dict[str, Any], known: dict[str, Check]) -> None:
    """A 400 naming the first known parameter whose value has the wrong type."""
    for name, value in body.items():
        check = known.get(name)
        if check is None or value is None:
            continue
        accepts, phrase = check
        if not accepts(value):
            raise InvalidRequest(f"`{name}` must be {phrase}, got {_describe(value)}", param=name)


def _describe(value: Any) -> str:
    kind = {str: "a string", bool: "a boolean", dict: "an object", list: "an array"}
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"the number {value!r}"
    text = repr(value)
    shown = text if len(text) <= 40 else text[:37] + "..."
    return f"{kind.get(type(value), type(value).__name__)} ({shown})"


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
        elif field == "cache_control":
            caller.cache_control = _directives(text)
        else:
            setattr(caller, field, text)
    return caller


def _directives(text: str) -> frozenset[str]:
    """The directives of a Cache-Control header, lower case, without their values."""
    return frozenset(
        part.split("=", 1)[0].strip().lower() for part in text.split(",") if part.strip()
    )


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
