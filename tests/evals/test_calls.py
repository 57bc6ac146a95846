"""The eval call cache: repeats stay apart, cold lookups are read at once, warm ones batched."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from controltower.evals.calls import CachedClient, CallScope, call_key, chat_key, current_scope
from controltower.evals.scoring import ModelReply
from controltower.store.memory_evals import InMemoryEvalStore


class CountingStore(InMemoryEvalStore):
    """The in-memory store, counting its cache reads and the keys each read asked for."""

    def __init__(self, *, inline: bool) -> None:
        super().__init__()
        self.inline_reads = inline
        self.reads: list[int] = []

    def cache_get(self, keys: Any) -> dict[str, Any]:
        self.reads.append(len(keys))
        return super().cache_get(keys)


class Echo:
    """A model client answering every call with its question."""

    def __init__(self) -> None:
        self.calls = 0

    async def chat(self, body: dict[str, Any], **_: Any) -> ModelReply:
        self.calls += 1
        text = body["messages"][-1]["content"]
        return ModelReply({"choices": [{"message": {"role": "assistant", "content": text}}]})

    async def embed(self, model: str, texts: list[str]) -> list[list[float]]:
        return [[1.0] for _ in texts]

    async def resolve(self, model: str) -> dict[str, Any]:
        return {"alias": model, "deployments": [f"{model}-1"]}


async def _ask_all(client: CachedClient, questions: int, repeat: int = 0) -> list[str]:
    async def one(i: int) -> str:
        current_scope.set(CallScope("run", f"q{i}", repeat))
        body = {"model": "fast", "messages": [{"role": "user", "content": f"question {i}"}]}
        return (await client.chat(body)).content

    return await asyncio.gather(*(one(i) for i in range(questions)))


def test_a_cold_local_cache_is_read_key_by_key_then_a_warm_one_in_batches() -> None:
    store, model = CountingStore(inline=True), Echo()

    async def go() -> None:
        cold = CachedClient(model, store, "on", "bench")
        assert await _ask_all(cold, 20) == [f"question {i}" for i in range(20)]
        assert store.reads == [1] * 20  # each miss read at once, no turn of the loop waited
        store.cache_put(cold.take_writes())
        store.reads.clear()
        warm = CachedClient(model, store, "on", "bench")
        assert await _ask_all(warm, 20) == [f"question {i}" for i in range(20)]
        assert model.calls == 20 and warm.hits == 20
        assert len(store.reads) <= 2 and sum(store.reads) == 20  # the first hit, then one batch

    asyncio.run(go())


def test_a_remote_cache_gathers_every_lookup_of_a_turn_into_one_read() -> None:
    store, model = CountingStore(inline=False), Echo()

    async def go() -> None:
        client = CachedClient(model, store, "on", "bench")
        await _ask_all(client, 20)
        assert store.reads == [20]

    asyncio.run(go())


def test_repeats_are_cached_apart() -> None:
    store, model = CountingStore(inline=True), Echo()

    async def go() -> None:
        first = CachedClient(model, store, "on", "bench")
        await _ask_all(first, 5, repeat=0)
        store.cache_put(first.take_writes())
        second = CachedClient(model, store, "on", "bench")
        await _ask_all(second, 5, repeat=1)
        assert second.hits == 0 and model.calls == 10

    asyncio.run(go())


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=12,
)


@given(
    body=st.dictionaries(st.text(max_size=6), json_values, max_size=5),
    model=st.none() | st.text(max_size=6),
    routes=st.lists(json_values, min_size=2, max_size=2),
    repeat=st.integers(0, 99),
)
def test_a_chat_key_built_from_serialized_routes_is_the_call_key(
    body: dict[str, Any], model: str | None, routes: list[Any], repeat: int
) -> None:
    """Keys stay what earlier versions stored: a cache filled before still answers."""
    routes_json = orjson.dumps(routes, option=orjson.OPT_SORT_KEYS)
    expected = call_key("chat", [body, model, routes], repeat)
    assert chat_key(body, model, routes_json, repeat) == expected
