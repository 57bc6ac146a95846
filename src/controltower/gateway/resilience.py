"""Retry and fallback as wrappers around a `Route`: chat and embeddings alike.

A route is what a model alias's chain is built from (see `Gateway`): the balancer of
the alias's deployments at the bottom, then retrying, then the fallback over the alias
and its fallback aliases. Each wrapper serves both calls with the same rule, so an
embeddings request is retried, falls back and trips breakers as a chat request does.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from controltower.errors import APIError, is_retryable, wants_fallback
from controltower.providers import (
    ChatCompletion,
    ChatRequest,
    ChatStream,
    EmbeddingRequest,
    EmbeddingResult,
)

T = TypeVar("T")


class Route(Protocol):
    """One link of an alias's chain: answers chat and embeddings requests."""

    async def chat(self, request: ChatRequest) -> ChatCompletion | ChatStream:
        """Answer whole, or return a stream whose first event has arrived."""
        ...

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        """Embed the inputs of the request's body."""
        ...


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter that honours the provider's Retry-After."""

    base_s: float = 0.25
    max_s: float = 8.0
    max_retry_after_s: float = 30.0

    def delay(self, attempt: int, error: APIError) -> float | None:
        """Seconds to wait before retry number `attempt` (1-based); None means do not retry."""
        wait: float = min(self.max_s, self.base_s * 2.0 ** (attempt - 1))
        wait *= random.uniform(0.5, 1.0)
        if error.retry_after is not None:
            if error.retry_after > self.max_retry_after_s:
                return None
            wait = max(wait, error.retry_after)
        return wait


class Retrying:
    """Tries again on rate limits, 5xx and timeouts; skips the wait when `ready` says so."""

    def __init__(
        self,
        inner: Route,
        retries: int,
        backoff: Backoff,
        ready_in: Callable[[], float] | None = None,
    ) -> None:
        self.inner = inner
        self.retries = retries
        self.backoff = backoff
        self._ready_in = ready_in

    async def chat(self, request: ChatRequest) -> ChatCompletion | ChatStream:
        """Call the inner route up to 1 + retries times."""
        return await self._tries(lambda: self.inner.chat(request))

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        """Call the inner route up to 1 + retries times."""
        return await self._tries(lambda: self.inner.embed(request))

    async def _tries(self, call: Callable[[], Awaitable[T]]) -> T:
        attempt = 0
        while True:
            try:
                return await call()
            except APIError as exc:
                attempt += 1
                if attempt > self.retries or not is_retryable(exc):
                    raise
                delay = self._delay(attempt, exc)
                if delay is None:
                    raise
                if delay:
                    await asyncio.sleep(delay)

    def _delay(self, attempt: int, exc: APIError) -> float | None:
        # a Retry-After cooled the deployment that sent it: another one may take the retry now
        if exc.retry_after is not None and self._ready_in is not None and self._ready_in() == 0.0:
            return 0.0
        return self.backoff.delay(attempt, exc)


class Fallback:
    """Tries each route in turn while the error is one another model may not have."""

    def __init__(self, chain: Sequence[Route]) -> None:
        self.chain = list(chain)

    async def chat(self, request: ChatRequest) -> ChatCompletion | ChatStream:
        """The first answer from the chain, or the last error."""
        return await self._first(lambda route: route.chat(request))

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        """The first embeddings from the chain, or the last error."""
        return await self._first(lambda route: route.embed(request))

    async def _first(self, call: Callable[[Route], Awaitable[T]]) -> T:
        last = len(self.chain) - 1
        for i, route in enumerate(self.chain):
            try:
                return await call(route)
            except APIError as exc:
                if i == last or not wants_fallback(exc):
                    raise
        raise AssertionError("unreachable: the chain is never empty")
