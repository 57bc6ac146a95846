"""The exact cache end to end with the official client: an answer given once is given
again for $0 (recorded as a hit, with what it saved), whole or streamed either way; it
never crosses projects, system prompts or parameters; Cache-Control opts out; in Redis,
every replica shares it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from controltower.errors import ConfigError
from controltower.store import open_store
from tests.conftest import RunningGateway, config, emptied_redis_db, running_gateway

MASTER = "sk-master-test"
MODELS = """
models:
  - name: demo
    cache: {ttl_s: 600}
    deployments: [{provider: mock, model: demo-1, price: {input: 1.0, output: 2.0}}]
  - name: vectors
    cache: {ttl_s: 600}
    deployments: [{provider: mock, model: embed-1, price: {input: 0.5, output: 0}}]
  - name: fresh
    deployments: [{provider: mock, model: fresh-1, price: {input: 1.0, output: 2.0}}]
"""
CONFIG = f"master_key: {MASTER}\n{MODELS}"


@pytest.fixture
def gateway(sqlite_url: str) -> Iterator[RunningGateway]:
    with running_gateway(config(CONFIG), open_store(sqlite_url)) as gw:
        yield gw


def unique(words: str = "tell me about refunds") -> list[dict[str, str]]:
    """Messages no other test sends (the Redis cache outlives a test)."""
    return [{"role": "user", "content": f"{words} {uuid.uuid4().hex}"}]


def ask(client: openai.OpenAI, messages: list[Any], model: str = "demo", **kw: Any) -> Any:
    return client.chat.completions.with_raw_response.create(
        model=model, messages=messages, max_tokens=30, **kw
    )


def status(raw: Any) -> str:
    value: str = raw.headers["x-controltower-cache"]
    return value


def test_a_repeated_request_is_answered_from_the_cache_for_nothing(
    gateway: RunningGateway,
) -> None:
    client = gateway.client(MASTER)
    messages = unique()
    first, second = ask(client, messages), ask(client, messages)
    assert (status(first), status(second)) == ("MISS", "HIT")
    made, replayed = first.parse(), second.parse()
    assert replayed.choices[0].message.content == made.choices[0].message.content
    assert replayed.id != made.id
    assert replayed.usage.total_tokens == made.usage.total_tokens  # what the answer took
    assert gateway.provider("demo").calls == 1
    billed = gateway.trace(first.headers["x-controltower-trace-id"])
    hit = gateway.trace(second.headers["x-controltower-trace-id"])
    assert billed["cost"] > 0 and billed["spans"][0]["attributes"]["cache"] == "MISS"
    root = hit["spans"][0]
    assert hit["cost"] == 0 and root["attributes"]["cache"] == "HIT"
    assert root["attributes"]["cache_saved_usd"] == pytest.approx(billed["cost"])
    assert root["attributes"]["cache_saved_tokens"] == made.usage.total_tokens
    # never provider-billed
    assert hit["usage"]["input_tokens"] == 0 and hit["usage"]["output_tokens"] == 0
    spend = httpx.get(
        gateway.url + "/api/spend",
        params={"by": "model"},
        headers={"authorization": f"Bearer {MASTER}"},
        timeout=10,
    ).json()
    demo = next(g for g in spend["groups"] if g["key"] == "demo")
    assert demo["requests"] == 2 and demo["cache_hits"] == 1
    assert demo["cost"] == pytest.approx(billed["cost"])
    assert demo["saved"] == pytest.approx(billed["cost"])
    # an alias without a cache is never cached, and says nothing about it
    plain = ask(client, messages, "fresh")
    assert "x-controltower-cache" not in plain.headers


def test_the_cache_never_crosses_projects_system_prompts_or_parameters(
    gateway: RunningGateway,
) -> None:
    keys = []
    for project in ("shop", "blog"):
        made = httpx.post(
            gateway.url + "/api/keys",
            headers={"authorization": f"Bearer {MASTER}"},
            json={"project": project},
            timeout=10,
        )
        keys.append(made.json()["secret"])
    shop, blog = gateway.client(keys[0]), gateway.client(keys[1])
    messages = unique()
    assert status(ask(shop, messages)) == "MISS"
    assert status(ask(shop, messages)) == "HIT"
    assert status(ask(blog, messages)) == "MISS"  # another project: never its answer
    system = [{"role": "system", "content": "Answer as a pirate."}, *messages]
    assert status(ask(shop, system)) == "MISS"
    assert status(ask(shop, messages, temperature=0.5)) == "MISS"
    tools = [{"type": "function", "function": {"name": "refund", "parameters": {}}}]
    assert status(ask(shop, messages, tools=tools)) == "MISS"
    assert status(ask(shop, messages, model="demo")) == "HIT"  # the first is still there


def test_streams_are_cached_and_replayed_as_streams(gateway: RunningGateway) -> None:
    client = gateway.client(MASTER)
    messages = unique("stream me a story")
    first = client.chat.completions.with_raw_response.create(
        model="demo", messages=messages, max_tokens=30, stream=True
    )
    assert status(first) == "MISS"
    streamed = "".join(c.choices[0].delta.content or "" for c in first.parse() if c.choices)
    gateway.trace(first.headers["x-controltower-trace-id"])  # the stream ended and was kept
    whole = ask(client, messages)  # a streamed answer serves a whole one
    assert status(whole) == "HIT" and whole.parse().choices[0].message.content == streamed
    again = client.chat.completions.with_raw_response.create(
        model="demo",
        messages=messages,
        max_tokens=30,
        stream=True,
        stream_options={"include_usage": True},
    )
    assert status(again) == "HIT"
    chunks = list(again.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == streamed
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert {c.choices[0].finish_reason for c in chunks if c.choices} >= {"stop"}
    hit = gateway.trace(again.headers["x-controltower-trace-id"])
    assert hit["cost"] == 0 and hit["spans"][0]["attributes"]["cache"] == "HIT"
    assert gateway.provider("demo").calls == 1


def test_cache_control_skips_the_lookup_or_the_cache(gateway: RunningGateway) -> None:
    client = gateway.client(MASTER)
    messages = unique()
    ask(client, messages)
    no_cache = ask(client, messages, extra_headers={"cache-control": "no-cache"})
    assert status(no_cache) == "MISS"
    no_store = ask(client, messages, extra_headers={"Cache-Control": "no-store"})
    assert status(no_store) == "BYPASS"
    fresh = unique()
    ask(client, fresh, extra_headers={"cache-control": "no-store"})
    assert status(ask(client, fresh)) == "MISS"  # no-store kept nothing
    assert gateway.provider("demo").calls == 5
    assert gateway.app.gateway.cache_stats.hits == 0


def test_embeddings_are_cached(gateway: RunningGateway) -> None:
    client = gateway.client(MASTER)
    text = [f"refund policy {uuid.uuid4().hex}", "shipping"]
    first = client.embeddings.with_raw_response.create(model="vectors", input=text)
    second = client.embeddings.with_raw_response.create(model="vectors", input=text)
    assert (status(first), status(second)) == ("MISS", "HIT")
    assert [d.embedding for d in second.parse().data] == [d.embedding for d in first.parse().data]
    hit = gateway.trace(second.headers["x-controltower-trace-id"])
    assert hit["cost"] == 0 and hit["spans"][0]["attributes"]["cache_saved_usd"] > 0
    assert gateway.provider("vectors").calls == 1


@pytest.fixture
def redis_url(redis_server_url: str) -> Iterator[str]:
    with emptied_redis_db(redis_server_url, 14) as url:
        yield url


def test_replicas_share_a_redis_cache(redis_url: str, sqlite_url: str) -> None:
    shared = config(f"{CONFIG}redis_url: {redis_url}\ncache: {{backend: redis}}\n")
    with (
        running_gateway(shared, open_store(sqlite_url)) as one,
        running_gateway(shared, open_store(sqlite_url)) as two,
    ):
        messages = unique()
        made = ask(one.client(MASTER), messages)
        one.trace(made.headers["x-controltower-trace-id"])  # stored by now
        replayed = ask(two.client(MASTER), messages)
        assert (status(made), status(replayed)) == ("MISS", "HIT")
        assert (
            replayed.parse().choices[0].message.content == made.parse().choices[0].message.content
        )
        assert two.provider("demo").calls == 0


def test_a_cache_that_cannot_be_reached_is_a_miss(sqlite_url: str) -> None:
    down = config(f"{CONFIG}redis_url: redis://127.0.0.1:1/0\ncache: {{backend: redis}}\n")
    with running_gateway(down, open_store(sqlite_url)) as gw:
        client = gw.client(MASTER)
        messages = unique()
        assert status(ask(client, messages)) == "MISS"
        assert status(ask(client, messages)) == "MISS"
        assert gw.app.gateway.cache_stats.errors >= 2


@pytest.mark.parametrize(
    ("text", "field", "fix"),
    [
        (f"{MODELS}cache: {{backend: redis}}\n", "cache.backend", "redis_url"),
        (MODELS.replace("ttl_s: 600", "ttl_s: -1", 1), "models[0].cache.ttl_s", "greater than 0"),
        (f"{MODELS}cache: {{backend: disk}}\n", "cache.backend", "memory"),
    ],
)
def test_an_invalid_cache_setting_names_the_field_and_the_fix(
    text: str, field: str, fix: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        config(text)
    problems = "\n".join(caught.value.problems)
    assert "test.yaml:" in problems and field in problems and fix in problems, problems
