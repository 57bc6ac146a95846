"""A real OpenTelemetry SDK exports GenAI spans to /v1/traces; they come back through the API."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import orjson
import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode, Tracer

from controltower.cost import PriceTable
from controltower.domain import Span, Usage
from controltower.store import open_store
from tests.conftest import DEMO, RunningGateway, config, running_gateway
from tests.ingest.conftest import stored_trace

RESOURCE = Resource.create(
    {"service.name": "support-bot", "service.version": "2.1.0", "deployment.environment": "test"}
)


@contextmanager
def tracer_to(
    gw: RunningGateway, *, one_by_one: bool = False, gzip: bool = False
) -> Iterator[Tracer]:
    """A tracer whose spans go to the gateway over OTLP/HTTP protobuf; flushed on exit."""
    exporter = OTLPSpanExporter(
        endpoint=f"{gw.url}/v1/traces",
        compression=Compression.Gzip if gzip else Compression.NoCompression,
        timeout=10,
    )
    processor: SpanProcessor = (
        SimpleSpanProcessor(exporter) if one_by_one else BatchSpanProcessor(exporter)
    )
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(processor)
    try:
        yield provider.get_tracer("tests.ingest")
        assert provider.force_flush(10_000)
    finally:
        provider.shutdown()


def answer(tracer: Tracer) -> str:
    """An application turn: a chain, a generation in the GenAI conventions and a failed tool."""
    with tracer.start_as_current_span("support-answer") as root:
        root.set_attributes(
            {"session.id": "s-42", "user.id": "u-7", "input.value": "Where is my order?"}
        )
        with tracer.start_as_current_span("chat gpt-4o-mini") as chat:
            chat.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.request.temperature": 0.3,
                    "gen_ai.usage.input_tokens": 1200,
                    "gen_ai.usage.output_tokens": 300,
                    "gen_ai.input.messages": orjson.dumps(
                        [{"role": "user", "parts": [{"type": "text", "content": "Where?"}]}]
                    ).decode(),
                    "gen_ai.output.messages": orjson.dumps(
                        [
                            {
                                "role": "assistant",
                                "parts": [{"type": "text", "content": "On its way."}],
                                "finish_reason": "stop",
                            }
                        ]
                    ).decode(),
                }
            )
        try:
            with tracer.start_as_current_span("execute_tool track") as tool:
                tool.set_attribute("gen_ai.operation.name", "execute_tool")
                raise TimeoutError("carrier API timed out")
        except TimeoutError:
            pass
        root.set_attribute("output.value", "On its way.")
        root.set_status(Status(StatusCode.OK))
        return f"{root.get_span_context().trace_id:032x}"


def expected_cost(input_tokens: int, output_tokens: int) -> float:
    span = Span(
        id="0" * 16,
        trace_id="0" * 32,
        name="x",
        kind="generation",
        start_us=0,
        model="gpt-4o-mini",
        provider="openai",
        usage=Usage(input_tokens, output_tokens),
    )
    cost = PriceTable().cost(span)
    assert cost is not None and cost > 0
    return cost


def check_answer(trace: dict[str, object]) -> None:
    assert trace["name"] == "support-answer"
    assert (trace["session_id"], trace["user_id"]) == ("s-42", "u-7")
    assert (trace["input"], trace["output"], trace["status"]) == (
        "Where is my order?",
        "On its way.",
        "ok",
    )
    assert (trace["environment"], trace["release"]) == ("test", "2.1.0")
    assert trace["metadata"]["service.name"] == "support-bot"  # type: ignore[index]
    cost = expected_cost(1200, 300)
    assert trace["usage"] == {
        "input_tokens": 1200,
        "output_tokens": 300,
        "cached_tokens": None,
        "reasoning_tokens": None,
        "total_tokens": 1500,
    }
    assert trace["cost"] == pytest.approx(cost)
    spans = {span["name"]: span for span in trace["spans"]}  # type: ignore[attr-defined]
    assert set(spans) == {"support-answer", "chat gpt-4o-mini", "execute_tool track"}
    chat = spans["chat gpt-4o-mini"]
    assert (chat["kind"], chat["model"], chat["provider"]) == (
        "generation",
        "gpt-4o-mini",
        "openai",
    )
    assert chat["parent_id"] == spans["support-answer"]["id"]
    assert chat["parameters"] == {"temperature": 0.3}
    assert chat["input"] == [{"role": "user", "content": "Where?"}]
    assert chat["output"] == {
        "role": "assistant",
        "content": "On its way.",
        "finish_reason": "stop",
    }
    assert chat["cost"] == pytest.approx(cost)
    tool = spans["execute_tool track"]
    assert (tool["kind"], tool["status"]) == ("tool", "error")
    assert tool["error"] == "TimeoutError: carrier API timed out"
    assert "exception.stacktrace" in tool["attributes"]


def test_batch_exporter_protobuf(gateway: RunningGateway, http: httpx.Client) -> None:
    with tracer_to(gateway) as tracer:
        trace_id = answer(tracer)
    check_answer(stored_trace(gateway, http, trace_id))


def test_spans_exported_one_by_one_with_gzip_merge_into_one_trace(
    gateway: RunningGateway, http: httpx.Client
) -> None:
    # each span is its own export: children arrive before their root
    with tracer_to(gateway, one_by_one=True, gzip=True) as tracer:
        trace_id = answer(tracer)
    check_answer(stored_trace(gateway, http, trace_id))


def test_into_sqlite(sqlite_url: str) -> None:
    store = open_store(sqlite_url)
    with running_gateway(config(DEMO), store) as gw, httpx.Client(base_url=gw.url) as client:
        with tracer_to(gw, one_by_one=True) as tracer:
            trace_id = answer(tracer)
        check_answer(stored_trace(gw, client, trace_id))
    store.close()


@pytest.mark.postgres
def test_into_postgresql(postgres_url: str) -> None:
    store = open_store(postgres_url)
    with running_gateway(config(DEMO), store) as gw, httpx.Client(base_url=gw.url) as client:
        with tracer_to(gw, one_by_one=True) as tracer:
            trace_id = answer(tracer)
        check_answer(stored_trace(gw, client, trace_id))
    store.close()
