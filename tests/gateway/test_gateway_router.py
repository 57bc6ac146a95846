"""BalancedAlias: strategies, cooldowns and the attempt spans it records."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from controltower.domain import CallTrace, Usage
from controltower.errors import APIError, InvalidRequest, RateLimited, UpstreamError
from controltower.gateway import router as router_module
from controltower.gateway.router import BalancedAlias, DeploymentState, NoDeploymentAvailable
from controltower.providers.base import ChatCompletion, ChatRequest, ChatStream, StreamSummary
from controltower.settings import Deployment, ModelAlias

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"


class FakeProvider:
    """Answers after `delay_s`, or raises the next scripted error; waits on `gate` if set."""

    def __init__(self, name: str, delay_s: float = 0.0) -> None:
        self.name = name
        self.delay_s = delay_s
        self.errors: list[APIError] = []
        self.gate: asyncio.Event | None = None
        self.timeouts: list[float] = []

    async def chat(self, request: ChatRequest) -> ChatCompletion | ChatStream:
        self.timeouts.append(request.timeout_s)
        if self.gate is not None:
            await self.gate.wait()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.errors:
            raise self.errors.pop(0)
        data: dict[str, Any] = {"choices": [], "model": self.name}
        return ChatCompletion(b"{}", data, model=self.name, usage=Usage(1, 1))


class StreamingProvider:
    async def chat(self, request: ChatRequest) -> ChatCompletion | ChatStream:
        async def events() -> AsyncIterator[bytes]:
            yield b"data: 1\n\n"
            yield b"data: [DONE]\n\n"

        return ChatStream(events(), StreamSummary())


def balanced(
    providers: list[Any],
    weights: list[float] | None = None,
    timeouts: list[float | None] | None = None,
    **alias_fields: Any,
) -> BalancedAlias:
    deployments = [
        Deployment(
            provider="openai",
            model=f"model-{i}",
            name=f"dep-{i}",
            weight=(weights or [1.0] * len(providers))[i],
            timeout_s=(timeouts or [None] * len(providers))[i],
        )
        for i in range(len(providers))
    ]
    alias = ModelAlias(name="chat", deployments=deployments, **alias_fields)
    states = [DeploymentState(d, p, alias) for d, p in zip(deployments, providers, strict=True)]
    return BalancedAlias(alias, states)


@pytest.fixture(autouse=True)
def seeded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(router_module, "random", random.Random(1234))


def request(trace: CallTrace | None = None) -> ChatRequest:
    return ChatRequest({"model": "chat", "messages": []}, trace=trace)


def cool_down(state: DeploymentState, seconds: float = 30.0) -> None:
    state.breaker.on_failure(cooldown_s=seconds)


# --- strategies -------------------------------------------------------------------------------


def test_weighted_picks_follow_the_weights() -> None:
    alias = balanced([FakeProvider("a"), FakeProvider("b"), FakeProvider("c")], [1, 3, 6])
    picks = Counter(alias.pick().deployment.label for _ in range(2000))
    assert 120 < picks["dep-0"] < 280  # ~200
    assert 480 < picks["dep-1"] < 720  # ~600
    assert 1050 < picks["dep-2"] < 1350  # ~1200


async def test_least_latency_prefers_the_fastest_after_measuring() -> None:
    slow, fast = FakeProvider("slow", delay_s=0.03), FakeProvider("fast")
    alias = balanced([slow, fast], strategy="least-latency")
    results = [await alias.chat(request()) for _ in range(2)]
    assert {r.model for r in results if isinstance(r, ChatCompletion)} == {"slow", "fast"}
    assert all(s.ewma_ms is not None for s in alias.states)
    state_slow, state_fast = alias.states
    assert state_fast.ewma_ms is not None and state_slow.ewma_ms is not None
    assert state_fast.ewma_ms < state_slow.ewma_ms
    for _ in range(5):
        assert alias.pick() is state_fast


def test_latency_ewma() -> None:
    alias = balanced([FakeProvider("a")])
    state = alias.states[0]
    state.observe_latency(100)
    assert state.ewma_ms == 100
    state.observe_latency(200)
    assert state.ewma_ms == pytest.approx(130)


async def test_least_busy_picks_the_fewest_in_flight() -> None:
    providers = [FakeProvider(name) for name in "abc"]
    gate = asyncio.Event()
    for p in providers:
        p.gate = gate
    alias = balanced(providers, strategy="least-busy")
    calls = [asyncio.create_task(alias.chat(request())) for _ in range(3)]
    await asyncio.sleep(0)
    assert [s.in_flight for s in alias.states] == [1, 1, 1]
    gate.set()
    await asyncio.gather(*calls)
    assert [s.in_flight for s in alias.states] == [0, 0, 0]

    alias.states[0].in_flight = 2
    alias.states[2].in_flight = 1
    assert {alias.pick().deployment.label for _ in range(20)} == {"dep-1"}


# --- cooldowns --------------------------------------------------------------------------------


def test_cooled_down_deployments_are_skipped() -> None:
    alias = balanced([FakeProvider("a"), FakeProvider("b"), FakeProvider("c")])
    cool_down(alias.states[1])
    assert {alias.pick().deployment.label for _ in range(200)} == {"dep-0", "dep-2"}


@pytest.mark.parametrize("count", [1, 3])
def test_all_cooling_down_is_503_with_retry_after(count: int) -> None:
    alias = balanced([FakeProvider(str(i)) for i in range(count)])
    for i, state in enumerate(alias.states):
        cool_down(state, 10.0 + i)
    with pytest.raises(NoDeploymentAvailable, match="cooling down") as caught:
        alias.pick()
    assert caught.value.status == 503
    assert caught.value.code == "no_deployment_available"
    assert caught.value.retry_after is not None
    assert 9.0 < caught.value.retry_after <= 10.0
    assert 9.0 < alias.ready_in() <= 10.0


async def test_retryable_failures_open_the_breaker() -> None:
    provider = FakeProvider("a")
    alias = balanced([provider], failure_threshold=2, cooldown_s=60)
    provider.errors = [UpstreamError("boom"), UpstreamError("boom")]
    for _ in range(2):
        with pytest.raises(UpstreamError):
            await alias.chat(request())
    assert alias.states[0].breaker.state == "open"
    with pytest.raises(NoDeploymentAvailable):
        await alias.chat(request())


async def test_retry_after_cools_the_deployment_at_once() -> None:
    provider = FakeProvider("a")
    alias = balanced([provider, FakeProvider("b")])
    provider.errors = [RateLimited("slow down", retry_after=12)]
    alias.states[1].breaker.on_failure(cooldown_s=60)  # force the first call to dep-0
    with pytest.raises(RateLimited):
        await alias.chat(request())
    assert 11 < alias.states[0].breaker.ready_in() <= 12


async def test_refused_request_does_not_count_against_the_deployment() -> None:
    provider = FakeProvider("a")
    alias = balanced([provider], failure_threshold=1)
    provider.errors = [InvalidRequest("bad temperature")]
    with pytest.raises(InvalidRequest):
        await alias.chat(request())
    assert alias.states[0].breaker.state == "closed"
    assert alias.states[0].in_flight == 0


async def test_timeout_comes_from_the_deployment_or_the_alias() -> None:
    providers = [FakeProvider("a"), FakeProvider("b")]
    alias = balanced(providers, timeouts=[5.0, None], timeout_s=42.0)
    alias.states[1].breaker.on_failure(cooldown_s=60)
    await alias.chat(request())
    alias.states[1].breaker.on_success()
    alias.states[0].breaker.on_failure(cooldown_s=60)
    await alias.chat(request())
    assert (providers[0].timeouts, providers[1].timeouts) == ([5.0], [42.0])


async def test_stream_stays_in_flight_until_it_ends() -> None:
    alias = balanced([StreamingProvider()])
    stream = await alias.chat(request())
    assert isinstance(stream, ChatStream)
    assert alias.states[0].in_flight == 1
    assert [piece async for piece in stream] == [b"data: 1\n\n", b"data: [DONE]\n\n"]
    assert alias.states[0].in_flight == 0


# --- attempt spans ----------------------------------------------------------------------------


async def test_attempt_spans_are_recorded_with_status_and_error() -> None:
    provider = FakeProvider("a")
    alias = balanced([provider])
    trace = CallTrace(TRACE_ID, PARENT_ID)
    provider.errors = [UpstreamError("upstream exploded")]
    with pytest.raises(UpstreamError):
        await alias.chat(request(trace))
    await alias.chat(request(trace))

    failed, ok = trace.spans
    for i, span in enumerate(trace.spans, start=1):
        assert span.trace_id == TRACE_ID
        assert span.parent_id == PARENT_ID
        assert span.kind == "span"
        assert span.name == "attempt dep-0"
        assert (span.model, span.provider, span.deployment) == ("model-0", "openai", "dep-0")
        assert span.attributes == {"attempt": i, "alias": alias.alias.name}
        assert span.end_us is not None and span.end_us >= span.start_us
    assert (failed.status, failed.error) == ("error", "UpstreamError: upstream exploded")
    assert (ok.status, ok.error) == ("ok", None)
    assert failed.id != ok.id


async def test_no_trace_no_spans() -> None:
    alias = balanced([FakeProvider("a")])
    result = await alias.chat(request())
    assert isinstance(result, ChatCompletion)
