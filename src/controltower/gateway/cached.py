"""The exact cache on the request path: an answer given once is given again, for $0.

`Cached` is the wrapper of an alias's chain whose alias has a cache TTL (an alias
without one has no wrapper, and pays nothing). It looks the request up by its exact key
(project, alias, the whole request: see `controltower.cache.keys`); a hit answers at
once, whole or as a stream, as the client asked, and a miss calls the chain and keeps
what it answered (a whole answer, or a stream that ended well) for the alias's TTL.

A hit bills nothing: its trace has no tokens and no cost, and says what it saved (the
tokens and the cost of the answer it replayed) on its root span and in the spend ledger.
Every answer says `x-controltower-cache: HIT` or `MISS`. A request with
`Cache-Control: no-cache` is not looked up (its answer is kept, replacing the old one);
with `no-store` it is neither looked up nor kept. A cache that cannot be reached is a
miss (counted and logged): the cache never fails a call.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

from controltower.cache import AnswerCache, cache_key
from controltower.domain import Usage
from controltower.gateway.resilience import Route
from controltower.gateway.tariffs import Pricer
from controltower.providers import ChatCompletion, ChatRequest, ChatStream, EmbeddingRequest
from controltower.providers.base import (
    SSE_DONE,
    EmbeddingResult,
    StreamSummary,
    sse_event,
    usage_from_openai,
)

log = logging.getLogger("controltower.gateway")
HEADER = b"x-controltower-cache"


@dataclass(frozen=True, slots=True)
class CacheUse:
    """What the cache did for one call, for its trace and its spend entry."""

    status: str  # HIT, MISS or BYPASS
    saved_usd: float | None = None  # what the replayed answer cost when it was made
    saved_tokens: int | None = None


class CacheStats:
    """Counts of one gateway's cache, for /metrics and the tests."""

    __slots__ = ("errors", "hits", "misses", "stored")

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.stored = 0
        self.errors = 0  # lookups or stores the cache failed (answered as misses)


class Cached:
    """An alias's chain behind its exact cache (the `cached` wrapper)."""

    def __init__(
        self,
        inner: Route,
        alias: str,
        cache: AnswerCache,
        ttl_s: float,
        pricer: Pricer,
        stats: CacheStats,
    ) -> None:
        self.inner = inner
        self.alias = alias
        self.cache = cache
        self.ttl_s = ttl_s
        self.pricer = pricer
        self.stats = stats
        self._pending: set[asyncio.Task[None]] = set()

    async def chat(self, request: ChatRequest) -> ChatCompletion | ChatStream:
        """The cached answer, or the chain's (kept for next time)."""
        key, entry = await self._look_up("chat", request)
        if entry is not None:
            return self._replay(request, entry)
        result = await self.inner.chat(request)
        if key is None:
            return result  # no-store
        if isinstance(result, ChatCompletion):
            self._keep(key, result.data, result.usage, self.pricer.cost(request, result.usage))
            return result
        summary = result.summary

        def ended(error: BaseException | None) -> None:
            if error is None:
                self._keep_stream(key, request, summary)

        result.on_end(ended)
        return result

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        """The cached embeddings, or the chain's."""
        key, entry = await self._look_up("embed", request)
        if entry is not None:
            usage = usage_from_openai(entry.get("usage") or {})
            self._hit(request.context, entry, usage)
            return EmbeddingResult(entry["body"].encode(), Usage(0, 0), entry.get("model"))
        result = await self.inner.embed(request)
        if key is None:
            return result  # no-store
        cost = self.pricer.cost(request, result.usage)
        entry = {
            "body": result.body.decode(),
            "model": result.model,
            "usage": _usage_json(result.usage),
            "cost": cost,
        }
        self._store(key, entry)
        return result

    async def aclose(self) -> None:
        """Wait for the answers being stored."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    # -- lookups and stores -------------------------------------------------------------

    async def _look_up(
        self, kind: str, request: ChatRequest | EmbeddingRequest
    ) -> tuple[str | None, dict[str, Any] | None]:
        """The request's key and its cached entry: (None, None) when `no-store` bypasses
        the cache, (key, None) for a miss (counted, marked), (key, entry) for a hit."""
        context = request.context
        directives = _directives(context)
        if "no-store" in directives:
            _mark(context, CacheUse("BYPASS"))
            return None, None
        key = f"{kind}:{cache_key(_project(context), self.alias, request.body)}"
        if "no-cache" not in directives:
            entry = await self._get(key)
            if entry is not None:
                return key, entry
        self.stats.misses += 1
        _mark(context, CacheUse("MISS"))
        return key, None

    async def _get(self, key: str) -> dict[str, Any] | None:
        try:
            raw = await self.cache.get(key)
            return None if raw is None else orjson.loads(raw)
        except Exception as exc:
            self.stats.errors += 1
            log.warning("the answer cache failed a lookup; calling the model: %s", exc)
            return None

    def _replay(self, request: ChatRequest, entry: dict[str, Any]) -> ChatCompletion | ChatStream:
        data = entry["data"]
        usage = usage_from_openai(data.get("usage") or {})
        self._hit(request.context, entry, usage)
        if request.stream:
            return replay_stream(data, request.client_wants_usage)
        fresh = {**data, "id": _fresh_id(data.get("id")), "created": int(time.time())}
        return ChatCompletion(orjson.dumps(fresh), fresh, Usage(0, 0), data.get("model"))

    def _hit(self, context: Any, entry: dict[str, Any], usage: Usage) -> None:
        self.stats.hits += 1
        _mark(context, CacheUse("HIT", entry.get("cost"), usage.total_tokens))

    def _keep(self, key: str, data: dict[str, Any], usage: Usage, cost: float | None) -> None:
        choices = data.get("choices") or ()
        if not choices or any(
            c.get("finish_reason") not in ("stop", "tool_calls", "length") for c in choices
        ):
            return  # an answer cut off by a filter or an error is not worth replaying
        self._store(key, {"data": {**data, "usage": _usage_json(usage)}, "cost": cost})

    def _keep_stream(self, key: str, request: ChatRequest, summary: StreamSummary) -> None:
        choices = summary.output()  # decoded here: the trace writer has not seen it yet
        data = {
            "object": "chat.completion",
            "model": summary.model,
            "choices": choices,
        }
        self._keep(key, data, summary.usage, self.pricer.cost(request, summary.usage))

    def _store(self, key: str, entry: dict[str, Any]) -> None:
        value = orjson.dumps(entry)
        task = asyncio.get_running_loop().create_task(self._put(key, value))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _put(self, key: str, value: bytes) -> None:
        try:
            await self.cache.put(key, value, self.ttl_s)
            self.stats.stored += 1
        except Exception as exc:
            self.stats.errors += 1
            log.warning("the answer cache could not keep an answer: %s", exc)


def replay_stream(data: dict[str, Any], wants_usage: bool) -> ChatStream:
    """A cached answer as the stream a provider would have sent: per choice a chunk with
    its whole message and one with its finish reason, the usage chunk if asked, [DONE]."""
    summary = StreamSummary()
    base = {
        "id": _fresh_id(data.get("id")),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": data.get("model"),
    }
    chunks: list[bytes] = []
    for choice in data.get("choices") or ():
        index = choice.get("index", 0)
        message = dict(choice.get("message") or {})
        calls = message.get("tool_calls")
        if calls:
            message["tool_calls"] = [{**call, "index": i} for i, call in enumerate(calls)]
        for delta, reason in ((message, None), ({}, choice.get("finish_reason"))):
            chunk = {**base, "choices": [{"index": index, "delta": delta, "finish_reason": reason}]}
            summary.add(chunk)
            chunks.append(sse_event(orjson.dumps(chunk)))
    summary.usage = Usage(0, 0)  # billed nothing
    if wants_usage:
        last: dict[str, Any] = {**base, "choices": [], "usage": data.get("usage")}
        chunks.append(sse_event(orjson.dumps(last)))
    chunks.append(SSE_DONE)
    return ChatStream(_events(chunks), summary)


async def _events(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def _usage_json(usage: Usage) -> dict[str, Any]:
    prompt, completion = usage.input_tokens or 0, usage.output_tokens or 0
    answer: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if usage.cached_tokens:
        answer["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    if usage.reasoning_tokens:
        answer["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return answer


def _fresh_id(old: Any) -> str:
    prefix = old.rsplit("-", 1)[0] if isinstance(old, str) and "-" in old else "chatcmpl"
    return f"{prefix}-{secrets.token_hex(12)}"


def _directives(context: Any) -> frozenset[str]:
    caller = getattr(context, "caller", None)
    return getattr(caller, "cache_control", None) or frozenset()


def _project(context: Any) -> str:
    return getattr(context, "project", None) or "default"


def _mark(context: Any, use: CacheUse) -> None:
    if context is None or not hasattr(context, "cache"):
        return
    context.cache = use
    context.headers.append((HEADER, use.status.encode()))
