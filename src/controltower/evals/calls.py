"""The model client an eval's target and judges call: cached, labelled, linked to results.

Every call made while an item is worked on knows which run, item, repeat and scorer it
is for (a context variable the runner sets), so that:

- its trace carries them (tag `eval:NAME`, metadata `eval_run`, `eval_item`, `repeat`),
  and the result lists the traces of its judge calls;
- its cache key holds the repeat index: repeats stay independent samples, and a
  re-run with the same repeats is answered from the cache.

Cache lookups from many items in flight are gathered into one store read per turn of
the event loop, so a fully cached run costs a few reads, not one per call; on a local
store (SQLite, memory) a lookup that follows a miss is read at once instead, so that a
run on a cold cache does not wait a turn of the loop before every call.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from controltower.evals.scoring import ModelClient, ModelReply
from controltower.evals.store import EvalStore

log = logging.getLogger("controltower.evals")
CachePolicy = Literal["on", "off", "read-only"]


@dataclass(slots=True)
class CallScope:
    """What the calls made now are for; they append their trace ids here."""

    run_id: str
    item_id: str
    repeat: int
    scorer: str | None = None
    traces: dict[str, list[str]] = field(default_factory=dict)  # scorer ("" = target) -> ids
    cached: int = 0


current_scope: contextvars.ContextVar[CallScope | None] = contextvars.ContextVar(
    "controltower_eval_scope", default=None
)


def call_key(kind: str, payload: Any, repeat: int) -> str:
    """The cache key of one call: what is sent, and the repeat it is for."""
    raw = orjson.dumps([kind, payload, repeat], option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.sha256(raw).hexdigest()


def _dumped(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str)


def chat_key(body: dict[str, Any], model: str | None, routes: bytes, repeat: int) -> str:
    """`call_key("chat", [body, model, ROUTES], repeat)`, with the routes already
    serialized (compact JSON is the concatenation of its parts' JSON)."""
    raw = b'["chat",[%b,%b,%b],%d]' % (_dumped(body), _dumped(model), routes, repeat)
    return hashlib.sha256(raw).hexdigest()


class CachedClient:
    """A ModelClient that caches replies in the eval store and labels every call."""

    def __init__(
        self, client: ModelClient, store: EvalStore, policy: CachePolicy, eval_name: str
    ) -> None:
        self.client = client
        self.store = store
        self.policy = policy
        self.tag = f"eval:{eval_name}"
        self.hits = 0
        self.misses = 0
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._flush: asyncio.Handle | None = None
        self._writes: dict[str, Any] = {}
        self._resolved: dict[str, dict[str, Any]] = {}
        self._route_json: dict[tuple[Any, Any], bytes] = {}  # (body model, model) -> routes
        # while lookups hit, they are gathered into one read per turn of the event loop;
        # while they miss on a local store, each is read at once (a miss is ~0.1 ms)
        self._warm = False

    async def chat(
        self,
        body: dict[str, Any],
        *,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        model: str | None = None,
    ) -> ModelReply:
        """The reply from the cache, or from the gateway (then cached)."""
        scope = current_scope.get()
        repeat = scope.repeat if scope else 0
        key = chat_key(body, model, await self._routes(body.get("model"), model), repeat)
        if self.policy != "off":
            found = await self._lookup(key)
            if found is not None:
                self.hits += 1
                if scope:
                    scope.cached += 1
                return _reply_of(found)
        self.misses += 1
        meta = dict(metadata or {})
        if scope:
            meta.update(eval_run=scope.run_id, eval_item=scope.item_id, repeat=scope.repeat)
            if scope.scorer:
                meta["eval_scorer"] = scope.scorer
        reply = await self.client.chat(
            body, tags=[self.tag, *(tags or [])], metadata=meta, model=model
        )
        if scope and reply.trace_id:
            scope.traces.setdefault(scope.scorer or "", []).append(reply.trace_id)
        if self.policy == "on":
            self._writes[key] = _stored(reply)
        return reply

    async def embed(self, model: str, texts: list[str]) -> list[list[float]]:
        """Embeddings from the cache, or from the gateway (then cached)."""
        identity = await self._identity(model)
        key = call_key("embed", [model, identity, texts], 0)  # embeddings are deterministic
        if self.policy != "off":
            found = await self._lookup(key)
            if found is not None:
                self.hits += 1
                return [list(map(float, v)) for v in found]
        self.misses += 1
        vectors = await self.client.embed(model, texts)
        if self.policy == "on":
            self._writes[key] = vectors
        return vectors

    async def resolve(self, model: str) -> dict[str, Any]:
        """What the gateway resolves the alias or prompt reference to, once per run (the
        run's record and the cache keys read the same answer)."""
        if model not in self._resolved:
            self._resolved[model] = await self.client.resolve(model)
        return self._resolved[model]

    async def _routes(self, body_model: Any, model: str | None) -> bytes:
        """The serialized identities of a chat call's two model names, kept once both
        resolved (an alias that did not is asked again on the next call)."""
        pair = (body_model if isinstance(body_model, str) else None, model)
        known = self._route_json.get(pair) if pair[0] == body_model else None
        if known is None:
            routes = [await self._identity(body_model), await self._identity(model)]
            known = _dumped(routes)
            if pair[0] == body_model and not any(
                isinstance(r, dict) and "unresolved" in r for r in routes
            ):
                self._route_json[pair] = known
        return known

    async def _identity(self, model: Any) -> Any:
        """What `model` resolves to (a prompt version, deployments): part of the cache key,
        so a moved label or a new model version is not answered from the cache."""
        if not isinstance(model, str):
            return None
        known = self._resolved.get(model)
        if known is not None:
            return known
        try:
            return await self.resolve(model)
        except Exception as exc:  # the call itself will say what is wrong
            return {"unresolved": type(exc).__name__}

    def take_writes(self) -> dict[str, Any]:
        """The replies to cache that were not written yet (the runner writes them)."""
        writes, self._writes = self._writes, {}
        return writes

    async def _lookup(self, key: str) -> Any:
        if self.store.inline_reads and not self._warm:
            # a cold cache on a local store: read now, with no turn of the loop to wait
            found = self._cache_get([key]).get(key)
            self._warm = found is not None
            return found
        future = self._pending.get(key)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._pending[key] = future
            if self._flush is None:
                self._flush = asyncio.get_running_loop().call_soon(self._start_read)
        return await asyncio.shield(future)

    def _start_read(self) -> None:
        self._flush = None
        pending, self._pending = self._pending, {}
        if self.store.inline_reads:
            found = self._cache_get(list(pending))
            self._warm = bool(found)
            _answer(pending, found)
        else:
            asyncio.get_running_loop().create_task(self._read(pending))

    async def _read(self, pending: dict[str, asyncio.Future[Any]]) -> None:
        keys = list(pending)
        _answer(pending, await asyncio.to_thread(self._cache_get, keys))

    def _cache_get(self, keys: list[str]) -> dict[str, Any]:
        try:
            return self.store.cache_get(keys)
        except Exception:  # the store is down: the calls go to the gateway instead
            log.warning("eval cache read failed; calling the gateway", exc_info=True)
            return {}


def _answer(pending: dict[str, asyncio.Future[Any]], found: dict[str, Any]) -> None:
    for key, future in pending.items():
        if not future.done():
            future.set_result(found.get(key))


def _stored(reply: ModelReply) -> dict[str, Any]:
    return {
        "data": reply.data,
        "trace_id": reply.trace_id,
        "latency_ms": reply.latency_ms,
        "cost_usd": reply.cost_usd,
        "route": reply.route,
    }


def _reply_of(found: dict[str, Any]) -> ModelReply:
    return ModelReply(
        found.get("data") or {},
        found.get("trace_id"),
        found.get("latency_ms"),
        found.get("cost_usd"),
        dict(found.get("route") or {}),
    )
