"""OTLP/HTTP trace exports in JSON → partial TraceRecords.

The OTLP JSON encoding is the protobuf JSON mapping with two twists the spec spells out:
trace and span ids are hex strings (not base64), and 64-bit integers (times,
`intValue`) may come as decimal strings. Field names are lowerCamelCase; the original
snake_case names are accepted too, as protobuf JSON parsers do.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import math
from collections.abc import Callable
from typing import Any

import orjson

from controltower.ingest.assemble import (
    Assembler,
    OtlpDecodeError,
    OtlpResult,
    Resource,
    resource_from,
)
from controltower.ingest.semconv import SpanEvent
from controltower.ingest.values import shown

_HEX = "0123456789abcdefABCDEF"
_STATUS_CODES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}


class _Invalid(ValueError):
    """One span (or one value in it) breaks the encoding; the message says how."""


def decode_json(body: bytes) -> OtlpResult:
    """Decode a JSON ExportTraceServiceRequest; OtlpDecodeError when it is not one."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise OtlpDecodeError(f"The body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise OtlpDecodeError(
            "The body must be a JSON object with a `resourceSpans` array "
            "(an OTLP ExportTraceServiceRequest)"
        )
    batch = Assembler()
    for r, resource_spans in enumerate(_array(data, "resourceSpans", "resource_spans", "")):
        where = f"resourceSpans[{r}]"
        if not isinstance(resource_spans, dict):
            raise OtlpDecodeError(f"`{where}` must be an object")
        resource = _resource(resource_spans, where)
        for s, scope_spans in enumerate(_array(resource_spans, "scopeSpans", "scope_spans", where)):
            _scope(batch, scope_spans, resource, f"{where}.scopeSpans[{s}]")
    return batch.result()


def _array(obj: dict[str, Any], name: str, snake: str, where: str) -> list[Any]:
    value = obj.get(name, obj.get(snake))
    if value is None:
        return []
    if not isinstance(value, list):
        path = f"{where}.{name}" if where else name
        raise OtlpDecodeError(f"`{path}` must be an array, got {type(value).__name__}")
    return value


def _resource(resource_spans: dict[str, Any], where: str) -> Resource:
    raw = resource_spans.get("resource") or {}
    try:
        if not isinstance(raw, dict):
            raise _Invalid("must be an object")
        return resource_from(_attributes(raw.get("attributes")))
    except _Invalid as exc:
        raise OtlpDecodeError(f"`{where}.resource` {exc}") from None


def _scope(batch: Assembler, scope_spans: Any, resource: Resource, where: str) -> None:
    if not isinstance(scope_spans, dict):
        raise OtlpDecodeError(f"`{where}` must be an object")
    scope = scope_spans.get("scope") or {}
    name = scope.get("name") if isinstance(scope, dict) else None
    scope_name = name if isinstance(name, str) else ""
    for i, span in enumerate(_array(scope_spans, "spans", "spans", where)):
        try:
            problem = _add(batch, span, resource, scope_name)
        except _Invalid as exc:
            problem = str(exc)
        if problem is not None:
            batch.reject(f"{where}.spans[{i}]", problem)


def _add(batch: Assembler, span: Any, resource: Resource, scope: str) -> str | None:
    if not isinstance(span, dict):
        raise _Invalid("a span must be an object")
    get = span.get
    ids = (
        _id(get("traceId", get("trace_id")), 16, "traceId"),
        _id(get("spanId", get("span_id")), 8, "spanId"),
        _id(get("parentSpanId", get("parent_span_id")), 8, "parentSpanId", required=False),
    )
    name = get("name")
    if name is not None and not isinstance(name, str):
        raise _Invalid(f"name must be a string, got {type(name).__name__}")
    times = (
        _nanos(get("startTimeUnixNano", get("start_time_unix_nano")), "startTimeUnixNano"),
        _nanos(get("endTimeUnixNano", get("end_time_unix_nano")), "endTimeUnixNano"),
    )
    return batch.add(
        (ids[0] or "", ids[1] or "", ids[2]),
        name or "",
        times,
        _attributes(get("attributes")),
        _events(get("events")),
        _status(get("status")),
        resource,
        scope,
    )


def _id(value: Any, size: int, name: str, required: bool = True) -> str | None:
    if value is None or value == "":
        if required:
            raise _Invalid(f"{name} is missing")
        return None
    if not isinstance(value, str):
        raise _Invalid(f"{name} must be a hex string, got {type(value).__name__}")
    if len(value) == size * 2 and not value.strip(_HEX):
        hex_id = value.lower()
    else:
        hex_id = _base64_id(value, size, name)
    if not hex_id.strip("0"):
        raise _Invalid(f"{name} must not be all zero")
    return hex_id


def _base64_id(value: str, size: int, name: str) -> str:
    # some exporters use the plain protobuf JSON mapping, where bytes are base64
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != size:
        raise _Invalid(f"{name} must be {size * 2} hex digits, got {value[:80]!r}")
    return raw.hex()


_UINT64_MAX = 2**64 - 1  # OTLP times are fixed64


def _nanos(value: Any, name: str) -> int:
    if value is None or value == "":
        return 0
    nanos: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        nanos = value
    elif isinstance(value, str) and len(value) <= 20:
        with contextlib.suppress(ValueError):
            nanos = int(value)
    elif isinstance(value, float) and math.isfinite(value):
        nanos = int(value)
    if nanos is not None and 0 <= nanos <= _UINT64_MAX:
        return nanos
    raise _Invalid(
        f"{name} must be a whole number of nanoseconds since 1970 (or a decimal string), "
        f"got {shown(value)}"
    )


def _status(value: Any) -> tuple[int, str]:
    if not value:
        return 0, ""
    if not isinstance(value, dict):
        raise _Invalid("status must be an object")
    code = value.get("code", 0)
    if isinstance(code, str):
        code = _STATUS_CODES.get(code, int(code) if code.isascii() and code.isdigit() else -1)
    if code not in (0, 1, 2):
        raise _Invalid(f"status.code must be 0, 1 or 2, got {shown(value.get('code'))}")
    message = value.get("message") or ""
    return code, message if isinstance(message, str) else str(message)


def _events(value: Any) -> list[SpanEvent]:
    if not value:
        return []
    if not isinstance(value, list):
        raise _Invalid("events must be an array")
    events = []
    for i, event in enumerate(value):
        if not isinstance(event, dict):
            raise _Invalid(f"events[{i}] must be an object")
        name = event.get("name")
        time_ns = _nanos(event.get("timeUnixNano", event.get("time_unix_nano")), "timeUnixNano")
        events.append((str(name or ""), time_ns // 1000, _attributes(event.get("attributes"))))
    return events


def _attributes(pairs: Any) -> dict[str, Any]:
    if not pairs:
        return {}
    if not isinstance(pairs, list):
        raise _Invalid("attributes must be an array of {key, value} objects")
    out = {}
    for i, pair in enumerate(pairs):
        key = pair.get("key") if isinstance(pair, dict) else None
        if not isinstance(key, str):
            raise _Invalid(f"attributes[{i}] must be an object with a string key")
        try:
            out[key] = _value_of(pair.get("value"))
        except _Invalid as exc:
            raise _Invalid(f"attributes[{i}] ({key!r}): {exc}") from None
    return out


def _value_of(value: Any) -> Any:
    """The Python value of an OTLP JSON AnyValue (`{"stringValue": ...}` etc.)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _Invalid(f"value must be an AnyValue object, got {value!r:.80}")
    for kind, inner in value.items():
        convert = _KINDS.get(kind)
        if convert is None:
            raise _Invalid(f"unknown value type {kind!r}")
        return convert(inner)
    return None  # {}: an empty value


def _int(value: Any) -> int:
    if isinstance(value, str) and len(value) <= 20:
        with contextlib.suppress(ValueError):
            value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63:
        return value
    raise _Invalid(f"intValue must be a 64-bit integer or a decimal string, got {shown(value)}")


def _double(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)  # "NaN", "Infinity" and "-Infinity" per the JSON mapping
        except ValueError:
            pass
    raise _Invalid(f"doubleValue must be a number, got {value!r:.80}")


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"stringValue must be a string, got {value!r:.80}")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"boolValue must be true or false, got {value!r:.80}")
    return value


def _array_value(value: Any) -> list[Any]:
    values = value.get("values") if isinstance(value, dict) else None
    if not isinstance(values, list | None):
        raise _Invalid("arrayValue must be an object with a `values` array")
    return [_value_of(item) for item in values or ()]


def _kvlist(value: Any) -> dict[str, Any]:
    values = value.get("values") if isinstance(value, dict) else None
    try:
        return _attributes(values)
    except _Invalid as exc:
        raise _Invalid(f"kvlistValue: {exc}") from None


_KINDS: dict[str, Callable[[Any], Any]] = {
    "stringValue": _string,
    "intValue": _int,
    "doubleValue": _double,
    "boolValue": _bool,
    "arrayValue": _array_value,
    "kvlistValue": _kvlist,
    "bytesValue": _string,  # base64 text, kept as it is
    "string_value": _string,
    "int_value": _int,
    "double_value": _double,
    "bool_value": _bool,
    "array_value": _array_value,
    "kvlist_value": _kvlist,
    "bytes_value": _string,
}
