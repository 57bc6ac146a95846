"""OTLP exports (protobuf and JSON) → partial trace records; invalid spans one by one."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from controltower.ingest import (
    CODE_INVALID_ARGUMENT,
    OtlpDecodeError,
    OtlpResult,
    decode_json,
    decode_protobuf,
    export_response,
    status_body,
)
from tests.ingest.otlp_build import (
    CHILD_ID,
    ROOT_ID,
    START_NS,
    TRACE_ID,
    json_request,
    json_span,
    pb_request,
    pb_span,
)

RESOURCE = {
    "service.name": "support-bot",
    "service.version": "1.4.2",
    "deployment.environment.name": "staging",
    "telemetry.sdk.language": "python",
}
CHAT = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.usage.input_tokens": 100,
    "gen_ai.usage.output_tokens": 20,
    "session.id": "s-1",
    "user.id": "u-1",
}


def both(spans: list[dict[str, Any]], resource: dict[str, Any] | None = None) -> list[OtlpResult]:
    """The same spans decoded from protobuf and from JSON."""
    pb = [pb_span(**span) for span in spans]
    js = [json_span(**span) for span in spans]
    return [decode_protobuf(pb_request(pb, resource)), decode_json(json_request(js, resource))]


def two_spans() -> list[dict[str, Any]]:
    return [
        {
            "name": "answer",
            "attributes": {"input.value": "hi", "openinference.span.kind": "CHAIN"},
            "span_id": ROOT_ID,
            "end_ns": START_NS + 900_000_000,
        },
        {
            "name": "chat gpt-4o-mini",
            "attributes": CHAT,
            "span_id": CHILD_ID,
            "parent_id": ROOT_ID,
            "start_ns": START_NS + 100_000_000,
        },
    ]


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_a_trace_with_its_root(encoding: str) -> None:
    result = both(two_spans(), RESOURCE)[encoding == "json"]
    assert (result.accepted, result.rejected, result.errors) == (2, 0, [])
    [record] = result.records
    assert record.partial
    trace = record.trace
    assert trace.id == TRACE_ID
    assert (trace.name, trace.input, trace.status) == ("answer", "hi", "ok")
    assert (trace.start_us, trace.end_us) == (START_NS // 1000, (START_NS + 900_000_000) // 1000)
    assert (trace.session_id, trace.user_id) == ("s-1", "u-1")
    assert (trace.environment, trace.release) == ("staging", "1.4.2")
    assert trace.metadata == {"service.name": "support-bot"}
    root, child = record.spans
    assert (root.id, root.parent_id, root.kind) == (ROOT_ID, None, "span")
    assert (child.parent_id, child.kind, child.model) == (ROOT_ID, "generation", "gpt-4o-mini")
    assert (child.usage.input_tokens, child.usage.output_tokens) == (100, 20)
    assert child.start_us == (START_NS + 100_000_000) // 1000
    assert child.attributes == {"otel.scope.name": "tests"}


def test_protobuf_and_json_agree() -> None:
    pb, js = both(two_spans(), RESOURCE)
    assert pb.records == js.records


def test_a_piece_without_the_root_leaves_the_trace_name_empty() -> None:
    [result, _] = both([two_spans()[1]])
    [record] = result.records
    assert (record.trace.name, record.trace.input) == ("", None)
    assert record.trace.session_id == "s-1"  # labels come from any span


def test_spans_group_by_trace_id() -> None:
    other = "1" * 32
    spans = [
        {"name": "a", "trace_id": TRACE_ID, "span_id": ROOT_ID},
        {"name": "b", "trace_id": other, "span_id": ROOT_ID},
        {"name": "c", "trace_id": TRACE_ID, "span_id": CHILD_ID, "parent_id": ROOT_ID},
    ]
    for result in both(spans):
        assert [(r.trace.id, len(r.spans)) for r in result.records] == [(TRACE_ID, 2), (other, 1)]


def test_attribute_value_types() -> None:
    attributes = {
        "s": "text",
        "i": 42,
        "d": 1.5,
        "b": True,
        "list": ["x", 2],
        "map": {"k": "v", "n": 1},
        "bytes": b"\x00\x01",
    }
    pb = decode_protobuf(pb_request([pb_span("op", attributes)]))
    expected = {**attributes, "bytes": base64.b64encode(b"\x00\x01").decode()}
    assert pb.records[0].spans[0].attributes == {**expected, "otel.scope.name": "tests"}
    span = json_span("op", {k: v for k, v in attributes.items() if k != "bytes"})
    span["attributes"].append({"key": "bytes", "value": {"bytesValue": "AAE="}})
    span["attributes"].append({"key": "empty", "value": {}})
    js = decode_json(json_request([span]))
    assert js.records[0].spans[0].attributes == {
        **expected,
        "empty": None,
        "otel.scope.name": "tests",
    }


def test_json_encoding_rules() -> None:
    span = json_span("op", {"gen_ai.request.model": "m"})
    span["traceId"] = TRACE_ID.upper()  # hex ids are case-insensitive
    span["startTimeUnixNano"] = START_NS  # numbers are accepted as well as decimal strings
    span["attributes"] = [
        {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "12"}},
        {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 3}},
        {"key": "ratio", "value": {"doubleValue": "NaN"}},
    ]
    span["status"] = {"code": "STATUS_CODE_ERROR", "message": "failed"}
    result = decode_json(json_request([span]))
    assert result.rejected == 0
    out = result.records[0].spans[0]
    assert out.trace_id == TRACE_ID
    assert (out.usage.input_tokens, out.usage.output_tokens) == (12, 3)
    assert out.attributes["ratio"] != out.attributes["ratio"]  # NaN
    assert (out.status, out.error) == ("error", "failed")


def test_json_snake_case_names_and_base64_ids() -> None:
    body = {
        "resource_spans": [
            {
                "scope_spans": [
                    {
                        "spans": [
                            {
                                "trace_id": base64.b64encode(bytes.fromhex(TRACE_ID)).decode(),
                                "span_id": base64.b64encode(bytes.fromhex(ROOT_ID)).decode(),
                                "name": "op",
                                "start_time_unix_nano": str(START_NS),
                                "end_time_unix_nano": str(START_NS + 1000),
                                "attributes": [{"key": "k", "value": {"string_value": "v"}}],
                            }
                        ]
                    }
                ]
            }
        ]
    }
    result = decode_json(orjson.dumps(body))
    assert result.rejected == 0, result.errors
    span = result.records[0].spans[0]
    assert (span.trace_id, span.id, span.attributes) == (TRACE_ID, ROOT_ID, {"k": "v"})


BAD_SPANS = [
    ({"trace_id": "abcd"}, "traceId"),
    ({"trace_id": "0" * 32}, "traceId"),
    ({"span_id": "0" * 16}, "spanId"),
    ({"span_id": "12"}, "spanId"),
    ({"parent_id": "123456"}, "parentSpanId"),
    ({"name": ""}, "name"),
    ({"end_ns": START_NS - 1}, "before startTimeUnixNano"),
    ({"start_ns": 0, "end_ns": 0}, "startTimeUnixNano"),
]


@pytest.mark.parametrize(("change", "named"), BAD_SPANS)
def test_invalid_spans_are_rejected_one_by_one(change: dict[str, Any], named: str) -> None:
    good = {"name": "good", "span_id": CHILD_ID}
    bad = {"name": "bad", "span_id": ROOT_ID, **change}
    pb = decode_protobuf(pb_request([pb_span(**good), pb_span(**bad)]))
    assert (pb.accepted, pb.rejected) == (1, 1)
    assert pb.errors[0].startswith("resourceSpans[0].scopeSpans[0].spans[1]: ")
    assert named in pb.errors[0]
    js = decode_json(json_request([json_span(**good), json_span(**bad)]))
    assert (js.accepted, js.rejected) == (1, 1)
    assert js.errors[0].startswith("resourceSpans[0].scopeSpans[0].spans[1]: ")
    assert named in js.errors[0]
    assert [s.name for r in js.records for s in r.spans] == ["good"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"attributes": [{"key": "n", "value": {"intValue": "ten"}}]}, "intValue"),
        ({"attributes": [{"key": "n", "value": {"weirdValue": 1}}]}, "unknown value type"),
        ({"attributes": [{"value": {"stringValue": "x"}}]}, "string key"),
        ({"attributes": {"n": 1}}, "attributes must be an array"),
        ({"startTimeUnixNano": "soon"}, "startTimeUnixNano"),
        ({"status": {"code": 7}}, "status.code"),
        ({"events": [{"name": "e", "timeUnixNano": "x"}]}, "timeUnixNano"),
    ],
)
def test_json_value_errors_reject_the_span(change: dict[str, Any], message: str) -> None:
    bad = {**json_span("bad"), **change}
    result = decode_json(json_request([json_span("good", span_id=CHILD_ID), bad]))
    assert (result.accepted, result.rejected) == (1, 1)
    assert message in result.errors[0]


def test_a_non_object_span_is_rejected() -> None:
    result = decode_json(json_request([json_span("good"), "nope"]))
    assert (result.accepted, result.rejected) == (1, 1)
    assert "must be an object" in result.errors[0]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "JSON object"),
        (b'{"resourceSpans": {}}', "`resourceSpans` must be an array"),
        (b'{"resourceSpans": [{"scopeSpans": 3}]}', "resourceSpans[0].scopeSpans"),
        (b'{"resourceSpans": [{"resource": {"attributes": 5}}]}', "resourceSpans[0].resource"),
    ],
)
def test_json_bodies_that_cannot_be_decoded(body: bytes, message: str) -> None:
    with pytest.raises(OtlpDecodeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        decode_json(body)


def test_protobuf_bodies_that_cannot_be_decoded() -> None:
    with pytest.raises(OtlpDecodeError, match="ExportTraceServiceRequest"):
        decode_protobuf(b"\xff\xff\xff\xff garbage")


def test_an_empty_export_is_fine() -> None:
    assert decode_protobuf(b"").records == []
    assert decode_json(b"{}").records == []


def test_many_rejections_quote_the_first_ten() -> None:
    spans = [json_span("", span_id=f"{i + 1:016x}") for i in range(25)]
    result = decode_json(json_request(spans))
    assert (result.accepted, result.rejected, len(result.errors)) == (0, 25, 10)
    message = result.error_message()
    assert message.startswith("25 of 25 spans rejected: ")
    assert message.endswith("; and 15 more")


def test_export_responses() -> None:
    ok = OtlpResult([], 3, 0, [])
    assert export_response(ok, as_json=True) == b"{}"
    assert ExportTraceServiceResponse.FromString(export_response(ok, as_json=False)) == (
        ExportTraceServiceResponse()
    )
    partial = OtlpResult([], 3, 2, ["a: bad", "b: bad"])
    decoded = ExportTraceServiceResponse.FromString(export_response(partial, as_json=False))
    assert decoded.partial_success.rejected_spans == 2
    assert decoded.partial_success.error_message == "2 of 5 spans rejected: a: bad; b: bad"
    assert orjson.loads(export_response(partial, as_json=True)) == {
        "partialSuccess": {
            "rejectedSpans": "2",
            "errorMessage": "2 of 5 spans rejected: a: bad; b: bad",
        }
    }


def test_status_bodies() -> None:
    from google.rpc.status_pb2 import Status

    long_text = "x" * 300  # a length that takes two varint bytes
    decoded = Status.FromString(status_body(CODE_INVALID_ARGUMENT, long_text, as_json=False))
    assert (decoded.code, decoded.message) == (CODE_INVALID_ARGUMENT, long_text)
    assert orjson.loads(status_body(14, "later", as_json=True)) == {"code": 14, "message": "later"}
