"""A batch larger than the whole trace queue is refused with 413 (an exporter must not retry
it forever); a batch that fits but finds the queue full gets 503 with Retry-After."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from google.rpc.status_pb2 import Status

from controltower.ingest import CODE_RESOURCE_EXHAUSTED, CODE_UNAVAILABLE
from tests.conftest import DEMO, RunningGateway, config, running_gateway
from tests.ingest.conftest import GatedStore
from tests.ingest.otlp_build import json_request, json_span, pb_request, pb_span

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}


def trace_id(n: int) -> str:
    return f"{n + 1:032x}"


def sdk_batch(*traces: int) -> dict[str, object]:
    spans = [
        {
            "type": "span",
            "body": {"id": "b7ad6b7169203331", "trace_id": trace_id(n), "name": "s", "start_us": 1},
        }
        for n in traces
    ]
    return {"batch": spans}


def otlp(*traces: int, as_json: bool = False) -> bytes:
    if as_json:
        return json_request([json_span("s", trace_id=trace_id(n)) for n in traces])
    return pb_request([pb_span("s", trace_id=trace_id(n)) for n in traces])


@pytest.fixture
def held() -> Iterator[tuple[RunningGateway, GatedStore, httpx.Client]]:
    """A trace queue of 3 in front of a store that blocks until told to write."""
    store = GatedStore()
    settings = config("trace_queue_size: 3\ntrace_batch_size: 1\n" + DEMO)
    try:
        with (
            running_gateway(settings, store) as gw,
            httpx.Client(base_url=gw.url, timeout=10) as client,
        ):
            yield gw, store, client
    finally:
        store.gate.set()


def test_batches_larger_than_the_queue_are_413_even_when_it_is_empty(
    held: tuple[RunningGateway, GatedStore, httpx.Client],
) -> None:
    gw, store, client = held
    store.gate.set()  # the store writes at once: only the size of a batch matters here
    sdk = client.post("/api/ingest", json=sdk_batch(*range(4)))
    assert sdk.status_code == 413, sdk.text
    error = sdk.json()["error"]
    assert error["code"] == "request_too_large" and "trace_queue_size" in error["message"]
    assert "retry-after" not in sdk.headers
    pb = client.post("/v1/traces", content=otlp(*range(4)), headers=PROTOBUF)
    assert pb.status_code == 413 and pb.headers["content-type"] == "application/x-protobuf"
    status = Status.FromString(pb.content)
    assert status.code == CODE_RESOURCE_EXHAUSTED and "4 traces" in status.message
    as_json = client.post("/v1/traces", content=otlp(*range(4), as_json=True), headers=JSON)
    assert as_json.status_code == 413 and as_json.json()["code"] == CODE_RESOURCE_EXHAUSTED
    assert gw.app.writer.stats.enqueued == 0
    assert client.post("/api/ingest", json=sdk_batch(*range(3))).status_code == 200


def test_a_batch_that_fits_but_finds_the_queue_full_is_503(
    held: tuple[RunningGateway, GatedStore, httpx.Client],
) -> None:
    gw, store, client = held
    assert client.post("/api/ingest", json=sdk_batch(0)).status_code == 200
    assert store.entered.wait(5)  # the writer holds trace 0; the queue is empty again
    assert client.post("/v1/traces", content=otlp(1, 2, 3), headers=PROTOBUF).status_code == 200
    full = client.post("/api/ingest", json=sdk_batch(4, 5))
    assert full.status_code == 503 and full.headers["retry-after"] == "1"
    assert full.json()["error"]["code"] == "queue_full"
    pb = client.post("/v1/traces", content=otlp(4), headers=PROTOBUF)
    assert pb.status_code == 503 and pb.headers["retry-after"] == "1"
    assert Status.FromString(pb.content).code == CODE_UNAVAILABLE
    # too large for the queue even once it drains: 413 while full, too
    assert client.post("/api/ingest", json=sdk_batch(*range(6, 10))).status_code == 413
    store.gate.set()
    assert gw.app.writer.flush(10)
    assert client.post("/api/ingest", json=sdk_batch(4, 5)).status_code == 200
