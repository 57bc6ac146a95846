"""Retrying and Fallback wrappers around any ChatProvider."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from controltower.domain import Usage
from controltower.errors import (
    APIError,
    ContentPolicy,
    ContextWindowExceeded,
    InvalidRequest,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
)
from controltower.gateway import resilience as resilience_module
from controltower.gateway.resilience import Backoff, Fallback, Retrying
from controltower.providers.base import ChatCompletion, ChatRequest, ChatStream


class Scripted:
    """Raises the scripted errors in turn, then answers."""

    def __init__(self, name: str, *errors: APIError) -> None:
        self.name = name
        self.errors = list(errors)
        self.calls = 0

    async def chat(self, request: ChatRequest) -> ChatCompletion | ChatStream:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return ChatCompletion(b"{}", {"choices": []}, Usage(), model=self.name)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the delays Retrying waits instead of sleeping them."""
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    monkeypatch.setattr(resilience_module, "asyncio", SimpleNamespace(sleep=sleep))
    return delays


def request() -> ChatRequest:
    return ChatRequest({"model": "chat", "messages": []})


async def answer(provider: Any) -> str | None:
    result = await provider.chat(request())
    assert isinstance(result, ChatCompletion)
    return result.model


# --- Retrying ---------------------------------------------------------------------------------


async def test_retries_until_success(sleeps: list[float]) -> None:
    inner = Scripted("m", UpstreamError("boom"), UpstreamTimeout("slow"))
    assert await answer(Retrying(inner, 2, Backoff())) == "m"
    assert inner.calls == 3
    assert len(sleeps) == 2


async def test_gives_up_after_the_retries(sleeps: list[float]) -> None:
    inner = Scripted("m", *(UpstreamError(f"boom {i}") for i in range(5)))
    with pytest.raises(UpstreamError, match="boom 2"):
        await Retrying(inner, 2, Backoff()).chat(request())
    assert inner.calls == 3


async def test_zero_retries_is_one_call(sleeps: list[float]) -> None:
    inner = Scripted("m", UpstreamError("boom"))
    with pytest.raises(UpstreamError):
        await Retrying(inner, 0, Backoff()).chat(request())
    assert inner.calls == 1
    assert sleeps == []


@pytest.mark.parametrize(
    "error",
    [InvalidRequest("bad"), ContextWindowExceeded("too long"), ContentPolicy("refused")],
)
async def test_no_retry_on_a_refused_request(sleeps: list[float], error: APIError) -> None:
    inner = Scripted("m", error)
    with pytest.raises(type(error)):
        await Retrying(inner, 3, Backoff()).chat(request())
    assert inner.calls == 1
    assert sleeps == []


async def test_retry_after_is_honoured(sleeps: list[float]) -> None:
    inner = Scripted("m", RateLimited("wait", retry_after=4.0))
    assert await answer(Retrying(inner, 1, Backoff(base_s=0.1, max_s=1.0))) == "m"
    assert sleeps == [4.0]


async def test_retry_after_beyond_the_maximum_is_not_retried(sleeps: list[float]) -> None:
    inner = Scripted("m", RateLimited("wait a minute", retry_after=60.0))
    with pytest.raises(RateLimited):
        await Retrying(inner, 3, Backoff(max_retry_after_s=30.0)).chat(request())
    assert inner.calls == 1
    assert sleeps == []


async def test_no_wait_when_another_deployment_is_ready(sleeps: list[float]) -> None:
    inner = Scripted("m", RateLimited("wait a minute", retry_after=60.0))
    retrying = Retrying(inner, 1, Backoff(max_retry_after_s=30.0), ready_in=lambda: 0.0)
    assert await answer(retrying) == "m"
    assert sleeps == []


async def test_waits_when_no_deployment_is_ready(sleeps: list[float]) -> None:
    inner = Scripted("m", RateLimited("wait", retry_after=2.0))
    retrying = Retrying(inner, 1, Backoff(), ready_in=lambda: 2.0)
    assert await answer(retrying) == "m"
    assert sleeps == [2.0]


async def test_backoff_delays_are_bounded(sleeps: list[float]) -> None:
    inner = Scripted("m", *(UpstreamError("boom") for _ in range(6)))
    retrying = Retrying(inner, 6, Backoff(base_s=0.25, max_s=1.0))
    assert await answer(retrying) == "m"
    assert len(sleeps) == 6
    for attempt, delay in enumerate(sleeps, start=1):
        ceiling = min(1.0, 0.25 * 2 ** (attempt - 1))
        assert ceiling / 2 <= delay <= ceiling


def test_backoff_grows_and_is_capped() -> None:
    backoff = Backoff(base_s=1.0, max_s=8.0, max_retry_after_s=30.0)
    error = UpstreamError("boom")
    for attempt in range(1, 10):
        delay = backoff.delay(attempt, error)
        ceiling = min(8.0, 2.0 ** (attempt - 1))
        assert delay is not None and ceiling / 2 <= delay <= ceiling
    assert backoff.delay(1, RateLimited("x", retry_after=30.0)) == 30.0
    assert backoff.delay(1, RateLimited("x", retry_after=30.5)) is None


# --- Fallback ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        UpstreamError("boom"),
        UpstreamTimeout("slow"),
        RateLimited("busy", retry_after=1),
        ContextWindowExceeded("too long"),
        ContentPolicy("refused"),
    ],
)
async def test_falls_back_on_errors_another_model_may_not_have(error: APIError) -> None:
    first, second = Scripted("first", error), Scripted("second")
    assert await answer(Fallback([first, second])) == "second"
    assert (first.calls, second.calls) == (1, 1)


async def test_no_fallback_on_an_invalid_request() -> None:
    first, second = Scripted("first", InvalidRequest("bad")), Scripted("second")
    with pytest.raises(InvalidRequest):
        await Fallback([first, second]).chat(request())
    assert second.calls == 0


async def test_first_answer_wins() -> None:
    first, second = Scripted("first"), Scripted("second")
    assert await answer(Fallback([first, second])) == "first"
    assert second.calls == 0


async def test_last_error_is_raised() -> None:
    chain = [
        Scripted("a", UpstreamError("a failed")),
        Scripted("b", ContextWindowExceeded("b too small")),
        Scripted("c", RateLimited("c busy", retry_after=3)),
    ]
    with pytest.raises(RateLimited, match="c busy"):
        await Fallback(chain).chat(request())
    assert [p.calls for p in chain] == [1, 1, 1]


async def test_fallback_of_retrying_chains(sleeps: list[float]) -> None:
    first = Scripted("first", *(UpstreamError("boom") for _ in range(3)))
    second = Scripted("second", UpstreamError("once"))
    chain = Fallback([Retrying(first, 2, Backoff()), Retrying(second, 2, Backoff())])
    assert await answer(chain) == "second"
    assert (first.calls, second.calls) == (3, 2)
    assert len(sleeps) == 3
