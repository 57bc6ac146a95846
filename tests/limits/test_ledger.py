"""Ledgers: admission holds every counter or none, settlement is exact and idempotent,
dead holds expire, rolling windows forget old spend; in memory and in Redis alike."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from controltower.limits import Charge, Cost, MemoryLedger, Rule, Subject, charges_for, rules_of
from controltower.limits.redis_ledger import RedisLedger
from controltower.settings import Budget, RateLimit


def charge(counter: str, limit: int, amount: int, window: str = "total") -> Charge:
    rule = Rule(counter, "budget", "project", "p", "usd", limit, window, True)
    return Charge(counter, rule, "p", amount)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
async def ledger(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    if request.param == "memory":
        yield MemoryLedger()
        return
    url, prefix = (
        request.getfixturevalue("redis_server_url"),
        request.getfixturevalue("redis_prefix"),
    )
    made = RedisLedger(url, prefix=prefix)
    yield made
    await made.aclose()


async def test_a_call_is_held_in_every_counter_or_in_none(ledger: Any) -> None:
    a, b = charge("a", 100, 60), charge("b", 100, 60)
    assert (await ledger.admit("r1", [a, b], 60)).used == (0, 0)
    refused = (await ledger.admit("r2", [charge("a", 100, 10), charge("b", 100, 50)], 60)).refusal
    assert refused is not None and refused.charge.counter == "b" and refused.used == 60
    assert (await ledger.admit("r3", [charge("a", 100, 40)], 60)).used == (60,)  # no hold of r2
    await ledger.settle("r1", [a.with_amount(30), b.with_amount(30)])
    await ledger.settle("r1", [a.with_amount(30), b.with_amount(30)])  # again: counted once
    assert (await ledger.admit("r4", [charge("b", 100, 70)], 60)).admitted  # 30 spent + 70


async def test_an_admission_retried_holds_nothing_twice(ledger: Any) -> None:
    a = charge("a", 100, 60)
    assert (await ledger.admit("r1", [a], 60)).admitted
    assert (await ledger.admit("r1", [a], 60)).admitted
    assert (await ledger.admit("r2", [charge("a", 100, 40)], 60)).used == (60,)


async def test_concurrent_callers_never_overspend_and_counters_add_up(ledger: Any) -> None:
    rng = random.Random(7)
    limit, settled = 1_000_000, []

    async def caller(i: int) -> None:
        for j in range(25):
            most = rng.randint(1_000, 40_000)
            actual = rng.randint(0, most)
            if (await ledger.admit(f"c{i}-{j}", [charge("shared", limit, most)], 60)).admitted:
                await asyncio.sleep(0)
                await ledger.settle(f"c{i}-{j}", [charge("shared", limit, actual)])
                settled.append(actual)

    await asyncio.gather(*(caller(i) for i in range(16)))
    assert sum(settled) <= limit
    if isinstance(ledger, RedisLedger):
        assert await ledger.counters([charge("shared", limit, 0)]) == [(sum(settled), 0)]
    else:
        assert ledger.spent("shared") == sum(settled) and ledger.reserved("shared") == 0


def test_a_hold_whose_call_died_expires() -> None:
    clock = Clock()
    ledger = MemoryLedger(clock)
    assert ledger.admit_now("dead", [charge("a", 100, 90)], ttl_s=30).admitted
    assert not ledger.admit_now("r2", [charge("a", 100, 20)], 30).admitted
    clock.now += 31
    assert ledger.admit_now("r2", [charge("a", 100, 20)], 30).admitted
    ledger.settle_now("dead", [charge("a", 100, 5)])  # it answered after all: counted
    assert ledger.spent("a") == 5 and ledger.reserved("a") == 20


async def test_a_redis_hold_whose_call_died_expires(
    redis_server_url: str, redis_prefix: str
) -> None:
    ledger = RedisLedger(redis_server_url, prefix=redis_prefix)
    try:
        assert (await ledger.admit("dead", [charge("a", 100, 90)], ttl_s=0.05)).admitted
        await asyncio.sleep(0.1)
        assert (await ledger.admit("r2", [charge("a", 100, 20)], 30)).used == (0,)
        assert await ledger.counters([charge("a", 100, 0)]) == [(0, 20)]
    finally:
        await ledger.aclose()


def test_a_rolling_window_forgets_old_spend_and_says_when_it_frees() -> None:
    clock = Clock()
    ledger = MemoryLedger(clock)
    hourly = charge("h", 100, 80, window="hour")
    assert ledger.admit_now("r1", [hourly], 60).admitted
    ledger.settle_now("r1", [hourly])
    clock.now += 1800
    refused = ledger.admit_now("r2", [hourly.with_amount(30)], 60).refusal
    assert refused is not None and refused.used == 80
    assert refused.frees_at == (1_000_000 // 60 + 60) * 60
    clock.now = refused.frees_at
    assert ledger.admit_now("r2", [hourly.with_amount(30)], 60).admitted


def test_budgets_become_charges_for_each_matching_value() -> None:
    budgets = [
        Budget(scope="project", match="shop", usd=10),
        Budget(scope="user", usd=1, tokens=5000, window="day"),
        Budget(scope="tag", usd=2),
        Budget(scope="model", match="other", usd=1),
        Budget(scope="key", usd=3),
    ]
    subject = Subject("shop", None, "ann", "demo", ("a", "b", "a"))
    found = charges_for(rules_of(budgets, []), subject, Cost.of(0.0123, 900))
    names = [(c.budget, c.value, c.unit, c.amount) for c in found]
    assert names == [
        ("project:shop", "shop", "usd", 12_300),
        ("user:*/day", "ann", "usd", 12_300),
        ("user:*/day", "ann", "tokens", 900),
        ("tag:*", "a", "usd", 12_300),
        ("tag:*", "b", "usd", 12_300),
    ]
    assert found[1].slot_s == 900 and found[1].slots == 96


def test_rate_limits_charge_requests_and_estimated_tokens_per_minute_and_day() -> None:
    limits = [RateLimit(scope="key", rpm=60, tpm=1000, rpd=5000)]
    subject = Subject("shop", "key_1", None, "demo")
    found = charges_for(rules_of([], limits), subject, Cost.of(0.5, 900, estimate=120))
    assert [(c.unit, c.rule.window, c.amount, c.limit) for c in found] == [
        ("requests", "minute", 1, 60),
        ("tokens", "minute", 120, 1000),
        ("requests", "day", 1, 5000),
    ]
    assert found[0].slot_s == 1 and found[0].slots == 60 and not found[0].rule.closed
    assert charges_for(rules_of([], limits), Subject("shop", None, None, "demo"), Cost(0, 0)) == []


@pytest.mark.parametrize("usd", [0.1, 0.2, 0.3, 1e-6, 0.02])
def test_costs_round_up_to_the_micro_dollar_without_float_noise(usd: float) -> None:
    assert Cost.of(usd, 0).micro_usd == round(usd * 1_000_000)
