"""OTLP/HTTP trace exports in protobuf → partial TraceRecords; the protocol's answers."""

from __future__ import annotations

import base64
from typing import Any

import orjson
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from controltower.ingest.assemble import (
    Assembler,
    OtlpDecodeError,
    OtlpResult,
    Resource,
    resource_from,
)
from controltower.ingest.semconv import SpanEvent

_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)

# google.rpc.Code values for the Status body of OTLP error answers
CODE_INVALID_ARGUMENT = 3
CODE_RESOURCE_EXHAUSTED = 8
CODE_UNAVAILABLE = 14


def decode_protobuf(body: bytes) -> OtlpResult:
    """Decode a binary ExportTraceServiceRequest; OtlpDecodeError when it is not one."""
    try:
        request = ExportTraceServiceRequest.FromString(body)
    except DecodeError as exc:
        raise OtlpDecodeError(
            f"The body is not a protobuf-encoded OTLP ExportTraceServiceRequest ({exc})"
        ) from None
    batch = Assembler()
    for r, resource_spans in enumerate(request.resource_spans):
        resource = resource_from(_attributes(resource_spans.resource.attributes))
        for s, scope_spans in enumerate(resource_spans.scope_spans):
            scope = scope_spans.scope.name
            for i, span in enumerate(scope_spans.spans):
                problem = _add(batch, span, resource, scope)
                if problem is not None:
                    where = f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]"
                    batch.reject(where, problem)
    return batch.result()


def _add(batch: Assembler, span: Any, resource: Resource, scope: str) -> str | None:
    trace_id, span_id, parent_id = span.trace_id, span.span_id, span.parent_span_id
    if len(trace_id) != 16 or trace_id == _ZERO_TRACE:
        return f"traceId must be 16 bytes and not all zero, got {trace_id.hex() or 'none'!r}"
    if len(span_id) != 8 or span_id == _ZERO_SPAN:
        return f"spanId must be 8 bytes and not all zero, got {span_id.hex() or 'none'!r}"
    if parent_id and len(parent_id) != 8:
        return f"parentSpanId must be 8 bytes or empty, got {parent_id.hex()!r}"
    events: list[SpanEvent] = []
    if span.events:
        events = [
            (event.name, event.time_unix_nano // 1000, _attributes(event.attributes))
            for event in span.events
        ]
    status = span.status
    return batch.add(
        (trace_id.hex(), span_id.hex(), parent_id.hex() if parent_id else None),
        span.name,
        (span.start_time_unix_nano, span.end_time_unix_nano),
        _attributes(span.attributes),
        events,
        (status.code, status.message),
        resource,
        scope,
    )


def _attributes(pairs: Any) -> dict[str, Any]:
    out = {}
    for pair in pairs:
        value = pair.value
        which = value.WhichOneof("value")
        # strings and ints are nearly all of it: read them without a call
        if which == "string_value":
            out[pair.key] = value.string_value
        elif which == "int_value":
            out[pair.key] = value.int_value
        else:
            out[pair.key] = _value(value, which)
    return out


def _value(value: Any, which: str | None) -> Any:
    if which is None:
        return None
    if which == "array_value":
        return [_value(item, item.WhichOneof("value")) for item in value.array_value.values]
    if which == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, which)


def export_response(result: OtlpResult, as_json: bool) -> bytes:
    """The ExportTraceServiceResponse for a decoded export, in the request's encoding."""
    if as_json:
        if not result.rejected:
            return b"{}"
        partial = {"rejectedSpans": str(result.rejected), "errorMessage": result.error_message()}
        return orjson.dumps({"partialSuccess": partial})
    response = ExportTraceServiceResponse()
    if result.rejected:
        response.partial_success.CopyFrom(
            ExportTracePartialSuccess(
                rejected_spans=result.rejected, error_message=result.error_message()
            )
        )
    return response.SerializeToString()  # type: ignore[no-any-return]


def status_body(code: int, message: str, as_json: bool) -> bytes:
    """A google.rpc.Status (the body of OTLP error answers) in the request's encoding."""
    if as_json:
        return orjson.dumps({"code": code, "message": message})
    # two fields are all it holds: field 1 varint code, field 2 length-delimited text
    text = message.encode()
    return bytes([0x08, code, 0x12]) + _varint(len(text)) + text


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)
