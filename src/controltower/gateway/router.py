"""Balancing one model alias over its deployments: weights, latency EWMA, in-flight, cooldown."""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

from controltower.domain import CallTrace, Span, new_span_id, now_us
from controltower.errors import APIError, InvalidRequest, UpstreamError, is_retryable
from controltower.gateway.breaker import CircuitBreaker
from controltower.providers import (
    ChatCompletion,
    ChatRequest,
    ChatStream,
    EmbeddingRequest,
    EmbeddingResult,
)
from controltower.providers.scrub import Scrubber
from controltower.settings import Deployment, ModelAlias

EWMA_ALPHA = 0.3
T = TypeVar("T")


class DeploymentState:
    """One deployment's provider and the live figures routing decisions use."""

    __slots__ = (
        "alias_name",
        "breaker",
        "deployment",
        "ewma_ms",
        "in_flight",
        "provider",
        "scrubber",
        "timeout_s",
    )

    def __init__(self, deployment: Deployment, provider: Any, alias: ModelAlias) -> None:
        self.deployment = deployment
        self.alias_name = alias.name
        self.provider = provider
        # any provider's errors (a plugin's too) lose the deployment's credentials here,
        # before a span, a trace or a client sees them
        key = deployment.api_key.get_secret_value() if deployment.api_key else None
        self.scrubber = Scrubber.for_credentials(key, deployment.headers)
        self.timeout_s = deployment.timeout_s or alias.timeout_s
        self.breaker = CircuitBreaker(alias.failure_threshold, alias.cooldown_s)
        self.in_flight = 0
        self.ewma_ms: float | None = None

    def observe_latency(self, ms: float) -> None:
        """Fold one call's latency (time to first token for streams) into the EWMA."""
        self.ewma_ms = (
            ms if self.ewma_ms is None else self.ewma_ms + EWMA_ALPHA * (ms - self.ewma_ms)
        )


class NoDeploymentAvailable(UpstreamError):
    status = 503
    code = "no_deployment_available"


class BalancedAlias:
    """A `ChatProvider` for one alias: each call goes to the deployment the strategy picks."""

    def __init__(self, alias: ModelAlias, states: list[DeploymentState]) -> None:
        self.alias = alias
        self.states = states
        self._pick = {
            "weighted": self._weighted,
            "least-latency": self._least_latency,
            "least-busy": self._least_busy,
        }[alias.strategy]

    def ready_in(self) -> float:
        """Seconds until some deployment of this alias accepts calls again."""
        return min(s.breaker.ready_in() for s in self.states)

    def pick(self) -> DeploymentState:
        """The deployment for the next call, skipping those cooling down."""
        if len(self.states) == 1:
            state = self.states[0]
            if state.breaker.allows():
                return state
            candidates = []
        else:
            candidates = [s for s in self.states if s.breaker.allows()]
        if candidates:
            return self._pick(candidates)
        wait = self.ready_in()
        raise NoDeploymentAvailable(
            f"every deployment of model {self.alias.name!r} is cooling down after failures; "
            f"retry in {wait:.1f} s",
            retry_after=wait,
        )

    async def chat(self, request: ChatRequest) -> ChatCompletion | ChatStream:
        """Send the request to one deployment and record the attempt."""
        state = self.pick()
        request.timeout_s = state.timeout_s
        return await _attempt(state, request.trace, lambda: state.provider.chat(request))

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        """Send the request to one deployment and record the attempt (as `chat` does:
        the breaker, the in-flight count and the latency figures count embeddings too)."""
        state = self.pick()
        embed = getattr(state.provider, "embed", None)
        if embed is None:
            raise InvalidRequest(
                f"deployment {state.deployment.label} of model {self.alias.name!r} has no "
                "embeddings API; route embeddings to a model whose deployments have one",
                param="model",
            )
        request.timeout_s = state.timeout_s
        return await _attempt(state, request.trace, lambda: embed(request.body, state.timeout_s))

    @staticmethod
    def _weighted(candidates: list[DeploymentState]) -> DeploymentState:
        if len(candidates) == 1:
            return candidates[0]
        weights = [s.deployment.weight for s in candidates]
        return random.choices(candidates, weights)[0]

    @staticmethod
    def _least_latency(candidates: list[DeploymentState]) -> DeploymentState:
        unmeasured = [s for s in candidates if s.ewma_ms is None]
        if unmeasured:
            return random.choice(unmeasured)
        return min(candidates, key=lambda s: s.ewma_ms or 0.0)

    @staticmethod
    def _least_busy(candidates: list[DeploymentState]) -> DeploymentState:
        low = min(s.in_flight for s in candidates)
        return random.choice([s for s in candidates if s.in_flight == low])


async def _attempt(
    state: DeploymentState, trace: CallTrace | None, call: Callable[[], Awaitable[T]]
) -> T:
    """One call to a deployment: its breaker, in-flight count, latency and attempt span.
    A stream keeps its slot until it ends (an end tap frees it)."""
    state.breaker.on_call()
    state.in_flight += 1
    span = _attempt_span(trace, state)
    started = time.perf_counter()
    try:
        result = await call()
    except APIError as exc:
        state.in_flight -= 1
        _fail(state, span, state.scrubber.error(exc))
        raise
    except BaseException:
        state.in_flight -= 1
        state.breaker.probing = False
        raise
    state.observe_latency((time.perf_counter() - started) * 1000)
    state.breaker.on_success()
    span.end_us = now_us()
    if isinstance(result, ChatStream):
        result.on_end(partial(_release, state))
    else:
        state.in_flight -= 1
    return result


def _attempt_span(trace: CallTrace | None, state: DeploymentState) -> Span:
    dep = state.deployment
    span = Span(
        id=new_span_id(),
        trace_id=trace.trace_id if trace else "",
        parent_id=trace.parent_id if trace else None,
        name=f"attempt {dep.label}",
        kind="span",
        start_us=now_us(),
        model=dep.model,
        provider=dep.provider,
        deployment=dep.label,
    )
    if trace is not None:
        span.attributes["attempt"] = len(trace.spans) + 1
        span.attributes["alias"] = state.alias_name  # a fallback alias shows on the trace
        trace.spans.append(span)
    return span


def _fail(state: DeploymentState, span: Span, exc: APIError) -> None:
    span.end_us = now_us()
    span.status = "error"
    span.error = f"{type(exc).__name__}: {exc.message}"
    if is_retryable(exc):
        state.breaker.on_failure(exc.retry_after)
    else:  # the deployment answered; the request itself was refused
        state.breaker.on_success()


def _release(state: DeploymentState, error: BaseException | None) -> None:
    """A stream of the deployment ended: free its slot (and scrub what it failed with)."""
    state.in_flight -= 1
    if isinstance(error, APIError):
        state.scrubber.error(error)
