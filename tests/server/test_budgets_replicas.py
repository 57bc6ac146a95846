"""Budgets exact across replicas: four `controltower serve` processes on one Redis, 64
concurrent callers on each, one API key with a $1 budget, random costs, 20 seeds.

- overspend is 0 (every call sets max_tokens);
- a call is refused only when spend plus reservations leave no room for its most cost;
- after each run the Redis counter equals the settled costs to the micro-dollar, and the
  store's traces of the run add up to it to the cent.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from controltower.limits.charges import MICRO, Cost
from tests.cli.test_cli import serving
from tests.conftest import emptied_redis_db

MASTER = "sk-replicas"
REPLICAS = 4
CALLERS = 64
SEEDS = 20
LIMIT = 1.0
PRICE_IN, PRICE_OUT = 150.0, 300.0  # USD per million tokens: calls of about a cent
GIVE_UP = 1  # refusals after which a caller stops


def config(redis_url: str) -> str:
    return f"""
master_key: {MASTER}
redis_url: {redis_url}
models:
  - name: demo
    deployments:
      - provider: mock
        model: demo-1
        price: {{input: {PRICE_IN}, output: {PRICE_OUT}}}
        mock: {{ttft_ms: 5}}
budgets:
  - {{name: per-key, scope: key, usd: {LIMIT}}}
"""


@pytest.fixture
def redis_url(redis_server_url: str) -> Iterator[str]:
    with emptied_redis_db(redis_server_url, 15) as url:
        yield url


@pytest.fixture
def replicas(tmp_path: Path, redis_url: str) -> Iterator[list[str]]:
    path = tmp_path / "controltower.yaml"
    path.write_text(config(redis_url))
    env = {"CONTROLTOWER_DATABASE_URL": f"sqlite:///{tmp_path / 'ct.db'}"}
    with ExitStack() as stack:
        urls = [
            stack.enter_context(serving("--config", str(path), env=env))[0] for _ in range(REPLICAS)
        ]
        yield urls


def cost_of(usage: Any) -> int:
    usd = (usage.prompt_tokens * PRICE_IN + usage.completion_tokens * PRICE_OUT) / 1_000_000
    micro = Cost.of(usd, 0).micro_usd
    assert micro is not None
    return micro


async def run(urls: list[str], secret: str, seed: int) -> tuple[list[int], list[dict[str, Any]]]:
    """Every caller calls until it is refused; the actual costs and the refusals."""
    rng = random.Random(seed)
    clients = [
        openai.AsyncOpenAI(
            base_url=f"{u}/v1", api_key=secret, max_retries=0,
            http_client=httpx.AsyncClient(limits=httpx.Limits(max_connections=CALLERS)),
        )
        for u in urls
    ]  # fmt: skip
    costs: list[int] = []
    refusals: list[dict[str, Any]] = []

    async def caller(client: openai.AsyncOpenAI, plan: list[tuple[int, int]]) -> None:
        refused = 0  # a refusal may be for calls in flight: a caller could try again
        for words, max_tokens in plan:
            try:
                reply = await client.chat.completions.create(
                    model="demo",
                    messages=[{"role": "user", "content": " ".join(["word"] * words)}],
                    max_tokens=max_tokens,
                )
            except openai.RateLimitError as exc:
                refusals.append(exc.body["budget"])  # type: ignore[index]
                refused += 1
                if refused == GIVE_UP:
                    return
                await asyncio.sleep(0.01)
                continue
            costs.append(cost_of(reply.usage))

    plans = [
        [(rng.randint(1, 60), rng.randint(1, 80)) for _ in range(50)]
        for _ in range(len(urls) * CALLERS)
    ]
    try:
        await asyncio.gather(
            *(caller(clients[i % len(clients)], plan) for i, plan in enumerate(plans))
        )
    finally:
        for client in clients:
            await client.close()
    return costs, refusals


def counter(redis_url: str, key_id: str) -> tuple[int, int]:
    import redis

    fields = redis.Redis.from_url(redis_url).hgetall(f"ct:budget:c:per-key|{key_id}|usd|total")
    reserved = int(fields.pop(b"r", 0))
    return sum(int(v) for v in fields.values()), reserved


def test_a_budget_holds_exactly_across_four_replicas(replicas: list[str], redis_url: str) -> None:
    admin = {"authorization": f"Bearer {MASTER}"}
    for seed in range(SEEDS):
        made = httpx.post(
            f"{replicas[seed % REPLICAS]}/api/keys",
            headers=admin,
            json={"project": f"run-{seed}"},
            timeout=10,
        ).json()
        _wait_known(replicas, made["secret"])
        costs, refusals = asyncio.run(run(replicas, made["secret"], seed))
        print(f"seed {seed}: {len(costs)} calls, ${sum(costs) / MICRO:.6f} of ${LIMIT}")
        assert sum(costs) <= LIMIT * MICRO, f"seed {seed}: overspent"
        assert len(refusals) >= REPLICAS * CALLERS  # every caller was refused in the end
        for refusal in refusals:  # refused only when there was no room for its most cost
            assert refusal["used"] + refusal["requested"] > LIMIT - 1e-9, (seed, refusal)
        spent, reserved = _settled(redis_url, made["id"], sum(costs))
        assert (spent, reserved) == (sum(costs), 0), f"seed {seed}"
        stored = _stored_cost(replicas[0], f"run-{seed}", len(costs))
        assert stored == pytest.approx(sum(costs) / MICRO, abs=0.005), f"seed {seed}"


def _wait_known(urls: list[str], secret: str) -> None:
    """Until every replica knows the new key (their rings refresh every half second)."""
    for url in urls:
        for _ in range(100):
            answer = httpx.get(f"{url}/v1/models", headers={"authorization": f"Bearer {secret}"})
            if answer.status_code == 200:
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"{url} never learned of the key")


def _settled(redis_url: str, key_id: str, expected: int) -> tuple[int, int]:
    """The counter once the last settlements (made just after each answer) are in."""
    found = counter(redis_url, key_id)
    for _ in range(100):
        if found == (expected, 0):
            break
        time.sleep(0.02)
        found = counter(redis_url, key_id)
    return found


def _stored_cost(url: str, project: str, count: int) -> float:
    """The cost of the run's traces in the store, once all of them are written."""
    admin = {"authorization": f"Bearer {MASTER}"}
    total, seen = 0.0, 0
    for _ in range(100):
        total, seen, cursor = 0.0, 0, None
        while True:
            params: dict[str, Any] = {"project": project, "limit": 200, "status": "ok"}
            if cursor:
                params["cursor"] = cursor
            page = httpx.get(f"{url}/api/traces", headers=admin, params=params).json()
            total += sum(t["cost"] or 0 for t in page["data"])
            seen += len(page["data"])
            cursor = page["next_cursor"]
            if not cursor:
                break
        if seen >= count:
            break
        time.sleep(0.1)
    assert seen == count, f"{seen} traces stored of {count}"
    return total
