"""Gateway: routing through mock deployments and the trace record of every call."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from controltower.domain import TraceRecord
from controltower.errors import ContextWindowExceeded, ModelNotFound, UpstreamError
from controltower.gateway import CallContext, Caller, Gateway
from controltower.providers.base import ChatCompletion, ChatStream
from controltower.providers.mock import MockProvider
from controltower.settings import Deployment, MockOptions, ModelAlias, PriceOverride, Settings

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "hello there"},
]


def mock_deployment(name: str, **options: Any) -> Deployment:
    return Deployment(
        provider="mock",
        model=f"{name}-model",
        name=name,
        price=PriceOverride(input=1.0, output=2.0, cached_input=0.5),
        mock=MockOptions(**options),
    )


def alias(name: str, *deployments: Deployment, **fields: Any) -> ModelAlias:
    return ModelAlias(name=name, deployments=list(deployments), **fields)


class Recorded:
    def __init__(self) -> None:
        self.records: list[TraceRecord] = []

    def __call__(self, record: TraceRecord) -> None:
        self.records.append(record)

    @property
    def only(self) -> TraceRecord:
        assert len(self.records) == 1
        return self.records[0]


def gateway(*aliases: ModelAlias) -> tuple[Gateway, Recorded]:
    settings = Settings(models=list(aliases), backoff_base_s=0.0, backoff_max_s=0.0)
    recorded = Recorded()
    return Gateway(settings, MockProvider, recorded), recorded


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "chat", "messages": MESSAGES, **fields}


async def test_completion_trace_record() -> None:
    gw, recorded = gateway(alias("chat", mock_deployment("primary", reply="Hi!")))
    caller = Caller(session_id="sess-1", tags=["beta"], metadata={"team": "search"})
    request = body(temperature=0.3, max_tokens=50, user="user-7", stream_options={"x": 1})

    result = await gw.chat(request, caller, trace_id=TRACE_ID)

    assert isinstance(result, ChatCompletion)
    assert orjson.loads(result.body)["choices"][0]["message"]["content"] == "Hi!"
    record = recorded.only
    (root,) = record.spans  # a first attempt that worked adds no span of its own
    trace = record.trace

    assert trace.id == TRACE_ID
    assert trace.name == "chat chat"
    assert (trace.user_id, trace.session_id) == ("user-7", "sess-1")
    assert (trace.tags, trace.metadata) == (["beta"], {"team": "search"})
    assert trace.input == MESSAGES
    assert trace.output == {"role": "assistant", "content": "Hi!"}
    assert trace.status == "ok"
    assert trace.end_us is not None and trace.end_us >= trace.start_us

    assert root.trace_id == TRACE_ID
    assert root.parent_id is None
    assert root.kind == "generation"
    assert root.name == "chat chat"
    assert root.input == MESSAGES
    assert root.output == {"role": "assistant", "content": "Hi!"}
    assert root.parameters == {"temperature": 0.3, "max_tokens": 50, "user": "user-7"}
    assert (root.model, root.provider, root.deployment) == ("primary-model", "mock", "primary")
    assert (root.usage.input_tokens, root.usage.output_tokens) == (10, 1)
    assert root.price_override == (1.0, 2.0, 0.5)
    assert root.attributes == {"model_alias": "chat", "attempts": 1}
    assert root.ttft_us is None
    assert (root.status, root.error) == ("ok", None)
    assert (root.start_us, root.end_us) == (trace.start_us, trace.end_us)


async def test_caller_user_wins_over_the_body_user() -> None:
    gw, recorded = gateway(alias("chat", mock_deployment("primary")))
    await gw.chat(body(user="from-body"), Caller(user_id="from-header"))
    assert recorded.only.trace.user_id == "from-header"
    assert len(recorded.only.trace.id) == 32


async def test_several_choices_are_a_list_of_outputs() -> None:
    gw, recorded = gateway(alias("chat", mock_deployment("primary", reply="x")))
    await gw.chat(body(n=2), Caller())
    assert recorded.only.spans[0].output == [
        {"role": "assistant", "content": "x"},
        {"role": "assistant", "content": "x"},
    ]


async def test_retries_and_fallback_are_attempt_spans_under_the_root() -> None:
    gw, recorded = gateway(
        alias("chat", mock_deployment("flaky", failure="503"), retries=1, fallbacks=["backup"]),
        alias("backup", mock_deployment("steady", reply="ok")),
    )
    result = await gw.chat(body(), Caller(), trace_id=TRACE_ID)

    assert isinstance(result, ChatCompletion)
    root, *attempts = recorded.only.spans
    assert [(a.deployment, a.status) for a in attempts] == [
        ("flaky", "error"),
        ("flaky", "error"),
        ("steady", "ok"),
    ]
    assert {a.parent_id for a in attempts} == {root.id}
    assert [a.attributes["attempt"] for a in attempts] == [1, 2, 3]
    assert attempts[0].error is not None and "HTTP 503" in attempts[0].error
    assert (root.status, root.deployment, root.model) == ("ok", "steady", "steady-model")
    assert root.attributes == {"model_alias": "chat", "attempts": 3}


async def test_failed_call_is_recorded_as_an_error() -> None:
    gw, recorded = gateway(alias("chat", mock_deployment("broken", failure="500"), retries=1))
    with pytest.raises(UpstreamError):
        await gw.chat(body(), Caller(), trace_id=TRACE_ID)

    record = recorded.only
    root = record.spans[0]
    assert record.trace.status == root.status == "error"
    assert root.error is not None and root.error.startswith("UpstreamError: ")
    assert "HTTP 500" in root.error
    assert root.output is None
    assert root.usage.total_tokens is None
    assert root.deployment == "broken"
    assert [s.status for s in record.spans[1:]] == ["error", "error"]


async def test_refused_request_is_not_retried() -> None:
    gw, recorded = gateway(alias("chat", mock_deployment("small", failure="context_window")))
    with pytest.raises(ContextWindowExceeded):
        await gw.chat(body(), Caller())
    assert len(recorded.only.spans) == 2


async def test_unknown_model() -> None:
    gw, recorded = gateway(alias("chat", mock_deployment("primary")))
    with pytest.raises(ModelNotFound, match="gpt-5") as caught:
        await gw.chat(body(model="gpt-5"), Caller())
    assert caught.value.param == "model"
    assert gw.model_ids() == ["chat"]
    assert recorded.records == []


async def test_stream_is_traced_when_it_ends() -> None:
    gw, recorded = gateway(alias("chat", mock_deployment("primary", reply="one two three")))
    stream = await gw.chat(
        body(stream=True, stream_options={"include_usage": True}), Caller(), trace_id=TRACE_ID
    )
    assert isinstance(stream, ChatStream)
    assert recorded.records == []

    raw = b"".join([piece async for piece in stream])

    assert raw.endswith(b"data: [DONE]\n\n")
    assert b'"usage":{' in raw  # the client asked for the usage chunk
    recorded.only.settle()  # what the trace writer does before it writes
    root = recorded.only.spans[0]
    assert root.status == "ok"
    assert root.output == {"role": "assistant", "content": "one two three"}
    assert (root.usage.input_tokens, root.usage.output_tokens) == (10, 3)
    assert root.parameters == {"stream": True}
    assert root.model == "primary-model"
    assert root.ttft_us is not None and root.latency_us is not None
    assert 0 <= root.ttft_us <= root.latency_us


async def test_stream_without_usage_for_the_client() -> None:
    gw, _ = gateway(alias("chat", mock_deployment("primary", reply="one")))
    stream = await gw.chat(body(stream=True), Caller())
    assert isinstance(stream, ChatStream)
    raw = b"".join([piece async for piece in stream])
    assert b'"usage"' not in raw


async def test_stream_broken_mid_way_is_recorded_as_an_error() -> None:
    deployment = mock_deployment("primary", reply="a b c d", failure="cut", cut_after=1)
    gw, recorded = gateway(alias("chat", deployment, retries=0))
    stream = await gw.chat(body(stream=True), Caller())
    assert isinstance(stream, ChatStream)
    with pytest.raises(UpstreamError):
        async for _ in stream:
            pass
    recorded.only.settle()
    root = recorded.only.spans[0]
    assert root.status == "error"
    assert root.error is not None and "broke off its stream" in root.error
    assert root.output == {"role": "assistant", "content": "a"}


async def test_client_disconnect_is_recorded() -> None:
    gw, recorded = gateway(alias("chat", mock_deployment("primary", reply="a b c d")))
    stream = await gw.chat(body(stream=True), Caller())
    assert isinstance(stream, ChatStream)
    async for _ in stream:
        break
    await stream.aclose()
    root = recorded.only.spans[0]
    assert root.status == "error"
    assert root.error is not None and "the client disconnected" in root.error


async def test_closing_a_stream_releases_the_deployment_at_once() -> None:
    gw, _ = gateway(alias("chat", mock_deployment("primary", reply="a b c d")))
    stream = await gw.chat(body(stream=True), Caller())
    assert isinstance(stream, ChatStream)
    state = gw.balanced["chat"].states[0]
    async for _ in stream:
        break
    assert state.in_flight == 1
    keep = stream  # a reference held elsewhere, e.g. by the server's response object
    await keep.aclose()
    assert state.in_flight == 0


async def test_embeddings_trace() -> None:
    gw, recorded = gateway(alias("emb", mock_deployment("vectors")))
    result = await gw.embed({"model": "emb", "input": ["a b", "c"]}, Caller(), TRACE_ID)

    assert len(orjson.loads(result.body)["data"]) == 2
    (root,) = recorded.only.spans
    assert root.kind == "embedding"
    assert root.name == "embeddings emb"
    assert root.input == ["a b", "c"]
    assert root.usage.input_tokens == 3
    assert root.parameters == {}
    assert (root.deployment, root.model) == ("vectors", "vectors-model")


async def test_embeddings_failure_is_retried_then_recorded() -> None:
    gw, recorded = gateway(alias("emb", mock_deployment("vectors", failure="500"), retries=2))
    with pytest.raises(UpstreamError):
        await gw.embed({"model": "emb", "input": "a"}, Caller(), TRACE_ID)
    root, *attempts = recorded.only.spans
    assert recorded.only.trace.status == "error"
    assert [(a.parent_id, a.status) for a in attempts] == [(root.id, "error")] * 3
    assert [a.attributes["attempt"] for a in attempts] == [1, 2, 3]
    with pytest.raises(ModelNotFound):
        await gw.embed({"model": "nope", "input": "a"}, Caller(), TRACE_ID)


async def test_embeddings_go_down_the_aliases_chain() -> None:
    """Retries, breakers and fallbacks apply to embeddings as they do to chat."""
    flaky = alias("emb", mock_deployment("flaky", failure="503", failure_times=1), retries=1)
    gw, recorded = gateway(flaky)
    result = await gw.embed({"model": "emb", "input": "a"}, Caller(), TRACE_ID)
    assert len(orjson.loads(result.body)["data"]) == 1
    root, failed, answered = recorded.only.spans
    assert (failed.status, answered.status, root.status) == ("error", "ok", "ok")
    # a broken alias falls back to the next one, and its breaker opens
    broken = alias("emb", mock_deployment("down", failure="500"), retries=0, fallbacks=["spare"])
    spare = alias("spare", mock_deployment("spare"))
    gw, recorded = gateway(broken, spare)
    for _ in range(6):
        await gw.embed({"model": "emb", "input": "a"}, Caller(), TRACE_ID)
    assert recorded.records[-1].spans[0].deployment == "spare"
    state = gw.balanced["emb"].states[0]
    assert not state.breaker.allows() and state.in_flight == 0
    # once open, the broken deployment is not even tried: one attempt, on the spare
    assert len(recorded.records[-1].spans) == 1
    first_attempts = recorded.records[0].spans[1:]
    assert [a.attributes["alias"] for a in first_attempts] == ["emb", "spare"]


async def test_aclose_closes_providers() -> None:
    closed: list[str] = []

    class Closable(MockProvider):
        async def aclose(self) -> None:
            closed.append(self.label)

    settings = Settings(models=[alias("chat", mock_deployment("a"), mock_deployment("b"))])
    gw = Gateway(settings, Closable, lambda record: None)
    await gw.aclose()
    assert sorted(closed) == ["a", "b"]
    await asyncio.sleep(0)


async def test_the_calls_context_reaches_its_trace() -> None:
    gw, recorded = gateway(alias("chat", mock_deployment("primary")))
    context = CallContext(Caller(user_id="u-1"), TRACE_ID, project="support", key_id="key-1")
    plan = await gw.plan_chat(body(), context)
    await gw.run_chat(plan, context)
    trace = recorded.only.trace
    assert (trace.id, trace.project, trace.user_id) == (TRACE_ID, "support", "u-1")
    # a caller that sent a W3C traceparent keeps its trace; others get the given or a new one
    continued = Caller(trace_id="f" * 32, parent_span_id="e" * 16)
    assert CallContext.of(continued, TRACE_ID).trace_id == "f" * 32
    assert CallContext.of(Caller(), TRACE_ID).trace_id == TRACE_ID
    assert CallContext.of(Caller()).trace_id != CallContext.of(Caller()).trace_id
