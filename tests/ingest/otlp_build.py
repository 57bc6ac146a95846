"""Builders of OTLP trace exports (protobuf and JSON) for the ingest tests."""

from __future__ import annotations

from typing import Any

import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

START_NS = 1_700_000_000_000_000_000
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
ROOT_ID = "b7ad6b7169203331"
CHILD_ID = "00f067aa0ba902b7"


def any_value(value: Any) -> AnyValue:
    """A Python value as an OTLP AnyValue."""
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, list):
        made = AnyValue()
        made.array_value.values.extend(any_value(v) for v in value)
        return made
    if isinstance(value, dict):
        made = AnyValue()
        made.kvlist_value.values.extend(
            KeyValue(key=k, value=any_value(v)) for k, v in value.items()
        )
        return made
    return AnyValue(string_value=str(value))


def pb_span(
    name: str,
    attributes: dict[str, Any] | None = None,
    *,
    trace_id: str = TRACE_ID,
    span_id: str = ROOT_ID,
    parent_id: str | None = None,
    start_ns: int = START_NS,
    end_ns: int = START_NS + 250_000_000,
    events: list[tuple[str, dict[str, Any]]] = (),  # type: ignore[assignment]
    status: tuple[int, str] = (0, ""),
) -> Span:
    """One protobuf span (ids as hex)."""
    span = Span(
        trace_id=bytes.fromhex(trace_id),
        span_id=bytes.fromhex(span_id),
        parent_span_id=bytes.fromhex(parent_id) if parent_id else b"",
        name=name,
        start_time_unix_nano=start_ns,
        end_time_unix_nano=end_ns,
        status=Status(code=status[0], message=status[1]),  # type: ignore[arg-type]
    )
    for key, value in (attributes or {}).items():
        span.attributes.add(key=key, value=any_value(value))
    for event_name, event_attributes in events:
        event = span.events.add(name=event_name, time_unix_nano=start_ns + 1000)
        for key, value in event_attributes.items():
            event.attributes.add(key=key, value=any_value(value))
    return span


def pb_request(
    spans: list[Span], resource: dict[str, Any] | None = None, scope: str = "tests"
) -> bytes:
    """An ExportTraceServiceRequest with one resource and one scope, serialized."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    for key, value in (resource or {}).items():
        resource_spans.resource.attributes.add(key=key, value=any_value(value))
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = scope
    scope_spans.spans.extend(spans)
    return request.SerializeToString()  # type: ignore[no-any-return]


def json_value(value: Any) -> dict[str, Any]:
    """A Python value as an OTLP JSON AnyValue (ints as decimal strings, as the spec says)."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [json_value(v) for v in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": json_attributes(value)}}
    return {"stringValue": str(value)}


def json_attributes(attributes: dict[str, Any]) -> list[dict[str, Any]]:
    """OTLP JSON key/value pairs."""
    return [{"key": key, "value": json_value(value)} for key, value in attributes.items()]


def json_span(
    name: str,
    attributes: dict[str, Any] | None = None,
    *,
    trace_id: str = TRACE_ID,
    span_id: str = ROOT_ID,
    parent_id: str | None = None,
    start_ns: int = START_NS,
    end_ns: int = START_NS + 250_000_000,
    **extra: Any,
) -> dict[str, Any]:
    """One OTLP JSON span (ids hex, times as decimal strings)."""
    span = {
        "traceId": trace_id,
        "spanId": span_id,
        "name": name,
        "kind": 3,
        "startTimeUnixNano": str(start_ns),
        "endTimeUnixNano": str(end_ns),
        "attributes": json_attributes(attributes or {}),
        **extra,
    }
    if parent_id:
        span["parentSpanId"] = parent_id
    return span


def json_request(spans: list[Any], resource: dict[str, Any] | None = None) -> bytes:
    """An OTLP JSON ExportTraceServiceRequest with one resource and one scope."""
    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": json_attributes(resource or {})},
                "scopeSpans": [{"scope": {"name": "tests"}, "spans": spans}],
            }
        ]
    }
    return orjson.dumps(body)
