"""The ingest routes against a real server: answers, partial success and the 4xx/503 cases."""

from __future__ import annotations

import gzip
from typing import Any

import httpx
import orjson
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.conftest import DEMO, RunningGateway, config, running_gateway
from tests.ingest.conftest import stored_trace
from tests.ingest.otlp_build import (
    CHILD_ID,
    ROOT_ID,
    TRACE_ID,
    json_request,
    json_span,
    pb_request,
    pb_span,
)

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}
CHAT = {
    "gen_ai.operation.name": "chat",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.usage.input_tokens": 1000,
    "gen_ai.usage.output_tokens": 100,
}
SDK_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def trace_id(n: int) -> str:
    return f"{n + 1:032x}"


def sdk_span(**body: Any) -> dict[str, Any]:
    base = {"id": ROOT_ID, "trace_id": SDK_TRACE, "name": "answer", "start_us": 1_000_000}
    return {"type": "span", "body": {**base, **body}}


# -- /v1/traces ------------------------------------------------------------------------


def test_otlp_json_by_hand(gateway: RunningGateway, http: httpx.Client) -> None:
    body = json_request(
        [json_span("answer"), json_span("chat", CHAT, span_id=CHILD_ID, parent_id=ROOT_ID)],
        {"service.name": "app"},
    )
    response = http.post("/v1/traces", content=body, headers=JSON)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}
    trace = stored_trace(gateway, http, TRACE_ID)
    assert trace["name"] == "answer"
    assert trace["usage"]["input_tokens"] == 1000
    assert trace["cost"] is not None and trace["cost"] > 0


def test_otlp_partial_success_in_json(gateway: RunningGateway, http: httpx.Client) -> None:
    spans = [json_span("good"), json_span("", span_id=CHILD_ID), json_span("bad", spanId="xyz")]
    response = http.post("/v1/traces", content=json_request(spans), headers=JSON)
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "2"
    assert partial["errorMessage"].startswith("2 of 3 spans rejected: ")
    assert "spans[1]: name is missing" in partial["errorMessage"]
    assert "spans[2]: spanId must be 16 hex digits" in partial["errorMessage"]
    assert [s["name"] for s in stored_trace(gateway, http, TRACE_ID)["spans"]] == ["good"]


def test_otlp_partial_success_in_protobuf(gateway: RunningGateway, http: httpx.Client) -> None:
    spans = [pb_span("good"), pb_span("late", span_id=CHILD_ID, end_ns=1)]
    response = http.post("/v1/traces", content=pb_request(spans), headers=PROTOBUF)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    partial = ExportTraceServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_spans == 1
    assert "endTimeUnixNano" in partial.error_message
    assert len(stored_trace(gateway, http, TRACE_ID)["spans"]) == 1


def test_otlp_all_good_protobuf_answer_is_empty(http: httpx.Client) -> None:
    response = http.post(
        "/v1/traces",
        content=pb_request([pb_span("x")]),
        headers=PROTOBUF | {"Content-Type": "application/x-protobuf; charset=binary"},
    )
    assert response.status_code == 200
    assert not ExportTraceServiceResponse.FromString(response.content).HasField("partial_success")


def test_otlp_bodies_that_cannot_be_decoded(http: httpx.Client) -> None:
    response = http.post("/v1/traces", content=b"\xff\xff\xff garbage", headers=PROTOBUF)
    assert response.status_code == 400
    status = Status.FromString(response.content)
    assert status.code == 3 and "ExportTraceServiceRequest" in status.message
    response = http.post("/v1/traces", content=b'{"resourceSpans": 3}', headers=JSON)
    assert response.status_code == 400
    assert response.json() == {
        "code": 3,
        "message": "`resourceSpans` must be an array, got int",
    }
    response = http.post(
        "/v1/traces", content=b"not gzip", headers=JSON | {"Content-Encoding": "gzip"}
    )
    assert response.status_code == 400
    assert "not valid gzip" in response.json()["message"]


def test_otlp_unsupported_types(http: httpx.Client) -> None:
    response = http.post("/v1/traces", content=b"x", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415
    assert "application/x-protobuf or application/json" in response.json()["message"]
    response = http.post("/v1/traces", content=b"x")
    assert response.status_code == 415
    response = http.post("/v1/traces", content=b"{}", headers=JSON | {"Content-Encoding": "br"})
    assert response.status_code == 415
    assert "Content-Encoding 'br'" in response.json()["message"]


def test_otlp_gzip(gateway: RunningGateway, http: httpx.Client) -> None:
    body = gzip.compress(pb_request([pb_span("zipped", CHAT)]))
    response = http.post(
        "/v1/traces", content=body, headers=PROTOBUF | {"Content-Encoding": "gzip"}
    )
    assert response.status_code == 200
    assert stored_trace(gateway, http, TRACE_ID)["name"] == "zipped"


def test_otlp_too_large(small_gateway: RunningGateway) -> None:
    big = json_request([json_span("big", {"blob": "x" * 5000})])
    zipped = gzip.compress(big)
    assert len(zipped) < 2000 < len(big)
    with httpx.Client(base_url=small_gateway.url) as client:
        response = client.post("/v1/traces", content=big, headers=JSON)
        assert response.status_code == 413
        assert response.json()["code"] == 8
        response = client.post(
            "/v1/traces", content=zipped, headers=JSON | {"Content-Encoding": "gzip"}
        )
        assert response.status_code == 413
        assert "expands past the limit of 2000 bytes" in response.json()["message"]
        response = client.post(
            "/v1/traces",
            content=pb_request([pb_span("big", {"blob": "x" * 5000})]),
            headers=PROTOBUF,
        )
        assert response.status_code == 413
        assert Status.FromString(response.content).code == 8
    assert small_gateway.app.writer.stats.enqueued == 0


def test_otlp_queue_full_answers_503(gated_gateway: RunningGateway) -> None:
    gw = gated_gateway
    store = gw.store

    def export(*traces: int) -> httpx.Response:
        spans = [pb_span(f"t{n}", trace_id=trace_id(n)) for n in traces]
        return client.post("/v1/traces", content=pb_request(spans), headers=PROTOBUF)

    with httpx.Client(base_url=gw.url, timeout=10) as client:
        assert export(0).status_code == 200
        assert store.entered.wait(5)  # the writer holds trace 0, the queue is empty again
        assert export(1, 2).status_code == 200  # fills the queue of 2
        refused = export(3)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert Status.FromString(refused.content).code == 14
        json_refused = client.post(
            "/v1/traces",
            content=json_request([json_span("t4", trace_id=trace_id(4))]),
            headers=JSON,
        )
        assert json_refused.status_code == 503
        assert json_refused.json()["code"] == 14
        store.gate.set()
        assert gw.app.writer.flush(10)
        assert export(3).status_code == 200  # the exporter's retry gets in
        assert gw.app.writer.flush(10)
    assert [store.get_trace(trace_id(n)) is not None for n in range(5)] == [
        True,
        True,
        True,
        True,
        False,
    ]
    assert gw.app.writer.stats.dropped == 0


# -- /api/ingest -----------------------------------------------------------------------


def test_sdk_batch(gateway: RunningGateway, http: httpx.Client) -> None:
    batch = [
        sdk_span(end_us=2_000_000, input="q", output="a"),
        sdk_span(
            id=CHILD_ID,
            parent_id=ROOT_ID,
            name="llm",
            kind="generation",
            start_us=1_100_000,
            end_us=1_900_000,
            model="gpt-4o-mini",
            usage={"input_tokens": 1000, "output_tokens": 100},
        ),
        {"type": "trace", "body": {"id": SDK_TRACE, "user_id": "u-1", "tags": ["beta"]}},
        {"type": "score", "body": {"trace_id": SDK_TRACE, "name": "thumbs", "value": True}},
    ]
    response = http.post("/api/ingest", json={"batch": batch})
    assert response.status_code == 200
    assert response.json() == {"accepted": 4, "rejected": 0, "errors": []}
    trace = stored_trace(gateway, http, SDK_TRACE)
    assert (trace["name"], trace["input"], trace["user_id"], trace["tags"]) == (
        "answer",
        "q",
        "u-1",
        ["beta"],
    )
    assert trace["usage"]["total_tokens"] == 1100
    assert trace["cost"] is not None and trace["cost"] > 0
    [score] = trace["scores"]
    assert (score["name"], score["value"], score["data_type"]) == ("thumbs", True, "boolean")


def test_sdk_batch_with_invalid_events(gateway: RunningGateway, http: httpx.Client) -> None:
    batch = [
        sdk_span(),
        sdk_span(id="nope"),
        {"type": "score", "body": {"trace_id": SDK_TRACE, "name": "x"}},
        {"type": "score", "body": {"trace_id": SDK_TRACE, "name": "stars", "value": 4}},
    ]
    response = http.post("/api/ingest", json={"batch": batch})
    assert response.status_code == 400
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 2)
    assert [e["index"] for e in body["errors"]] == [1, 2]
    assert "`body.id` must be 16 hex digits" in body["errors"][0]["message"]
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["code"] == "invalid_events"
    assert body["error"]["message"].startswith("2 of 4 events were rejected")
    trace = stored_trace(gateway, http, SDK_TRACE)  # the valid ones were stored
    assert [s["value"] for s in trace["scores"]] == [4.0]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{oops", "not valid JSON"),
        (b"[]", '"batch" array'),
        (b'{"batch": {}}', '"batch" array'),
    ],
)
def test_sdk_bodies_that_cannot_be_read(
    gateway: RunningGateway, http: httpx.Client, body: bytes, message: str
) -> None:
    response = http.post("/api/ingest", content=body, headers=JSON)
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]
    assert gateway.app.writer.stats.enqueued == 0


def test_sdk_gzip_and_content_types(gateway: RunningGateway, http: httpx.Client) -> None:
    body = gzip.compress(orjson.dumps({"batch": [sdk_span()]}))
    response = http.post("/api/ingest", content=body, headers=JSON | {"Content-Encoding": "gzip"})
    assert response.status_code == 200
    assert stored_trace(gateway, http, SDK_TRACE)["name"] == "answer"
    response = http.post("/api/ingest", content=b"x", headers={"Content-Type": "text/csv"})
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


def test_sdk_too_large(small_gateway: RunningGateway) -> None:
    body = orjson.dumps({"batch": [sdk_span(input="x" * 5000)]})
    with httpx.Client(base_url=small_gateway.url) as client:
        response = client.post("/api/ingest", content=body, headers=JSON)
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "request_too_large"
        response = client.post(
            "/api/ingest", content=gzip.compress(body), headers=JSON | {"Content-Encoding": "gzip"}
        )
        assert response.status_code == 413


def test_sdk_queue_full_answers_503_and_stores_nothing(gated_gateway: RunningGateway) -> None:
    gw = gated_gateway
    store = gw.store

    def ingest(*traces: int, score: bool = False) -> httpx.Response:
        batch = [sdk_span(trace_id=trace_id(n)) for n in traces]
        if score:
            batch.append(
                {"type": "score", "body": {"trace_id": trace_id(9), "name": "s", "value": 1}}
            )
        return client.post("/api/ingest", json={"batch": batch})

    with httpx.Client(base_url=gw.url, timeout=10) as client:
        assert ingest(0).status_code == 200
        assert store.entered.wait(5)
        assert ingest(1, 2).status_code == 200
        refused = ingest(3, score=True)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["code"] == "queue_full"
        store.gate.set()
        assert gw.app.writer.flush(10)
    assert store.get_trace(trace_id(3)) is None
    assert store.list_scores(trace_id=trace_id(9)) == []  # nothing of a refused batch


def test_routes_are_in_the_openapi_schema(http: httpx.Client) -> None:
    schema = http.get("/openapi.json").json()
    ingest = schema["paths"]["/api/ingest"]["post"]
    otlp = schema["paths"]["/v1/traces"]["post"]
    assert ingest["summary"] == "Ingest a batch of SDK events"
    assert set(ingest["responses"]) >= {"200", "400", "413", "415", "503"}
    assert set(otlp["requestBody"]["content"]) == {"application/x-protobuf", "application/json"}


def test_with_a_master_key_exports_carry_it() -> None:
    settings = config("master_key: sk-ingest-test\n" + DEMO)
    body = pb_request([pb_span("keyed")])
    with running_gateway(settings) as gw, httpx.Client(base_url=gw.url) as client:
        assert client.post("/v1/traces", content=body, headers=PROTOBUF).status_code == 401
        assert client.post("/api/ingest", json={"batch": []}).status_code == 401
        keyed = PROTOBUF | {"Authorization": "Bearer sk-ingest-test"}
        assert client.post("/v1/traces", content=body, headers=keyed).status_code == 200
        assert gw.app.writer.flush(10)
        assert gw.store.get_trace(TRACE_ID)["name"] == "keyed"
