"""Budgets end to end: calls reserve their most cost, settle their actual cost, and are
refused with 429 `budget_exceeded` (the official client's RateLimitError) once a budget
would be overrun; a call in a budget's window never takes spend past its limit."""

from __future__ import annotations

import time
from collections.abc import Iterator

import openai
import pytest

from controltower.limits.charges import MICRO
from tests.conftest import RunningGateway, config, running_gateway
from tests.conftest import chat_as as call

CONFIG = """
models:
  - name: demo
    deployments:
      - {provider: mock, model: demo-1, price: {input: 1000, output: 2000}}
  - name: free
    deployments: [{provider: mock, model: free-1, price: {input: 0, output: 0}}]
budgets:
  - {name: demo-total, scope: model, match: demo, usd: 0.5}
  - {name: per-user, scope: user, tokens: 200, window: day}
"""


@pytest.fixture
def gateway() -> Iterator[RunningGateway]:
    with running_gateway(config(CONFIG)) as gw:
        yield gw


def spent(gw: RunningGateway) -> float:
    gw.app.writer.flush(5)
    rows, _ = gw.store.list_traces(200, None, None)
    return sum(t["cost"] or 0 for t in rows if t["status"] == "ok")


def test_calls_stop_at_the_limit_and_spend_never_passes_it(gateway: RunningGateway) -> None:
    client = gateway.client()
    answered = 0
    with pytest.raises(openai.RateLimitError) as refused:
        for i in range(100):
            call(client, user=f"u{i}", max_tokens=10)
            answered += 1
    error = refused.value.body
    assert refused.value.code == "budget_exceeded", error
    assert error["budget"]["name"] == "demo-total" and error["budget"]["limit"] == 0.5
    assert "demo-total" in refused.value.message and "up to $" in refused.value.message
    assert answered > 2
    assert spent(gateway) <= 0.5
    time.sleep(0.2)  # settlements run just after each answer
    ledger = gateway.app.gateway.limits.ledger  # type: ignore[union-attr]
    counted = ledger.spent("demo-total|demo|usd|total") / MICRO
    assert counted == pytest.approx(spent(gateway), abs=answered * 1e-6)
    assert ledger.reserved("demo-total|demo|usd|total") == 0
    call(client, "free", user="zed", max_tokens=10)  # another alias: not in the model budget


def test_a_token_budget_per_user_counts_each_user_apart(gateway: RunningGateway) -> None:
    client = gateway.client()
    call(client, "free", user="bob", max_tokens=100)
    with pytest.raises(openai.RateLimitError) as refused:
        for _ in range(20):
            call(client, "free", user="bob", max_tokens=100)
    budget = refused.value.body["budget"]
    assert budget["name"] == "per-user" and budget["value"] == "bob" and budget["unit"] == "tokens"
    assert budget["resets_at"] is not None
    assert refused.value.response.headers.get("retry-after")
    call(client, "free", user="carol", max_tokens=100)  # another user still has room


def test_a_stream_settles_when_it_ends(gateway: RunningGateway) -> None:
    client = gateway.client()
    stream = client.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "a b c"}], stream=True, max_tokens=5
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    ledger = gateway.app.gateway.limits.ledger  # type: ignore[union-attr]
    deadline = time.monotonic() + 5
    while ledger.reserved("demo-total|demo|usd|total") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ledger.reserved("demo-total|demo|usd|total") == 0
    assert ledger.spent("demo-total|demo|usd|total") > 0


def test_an_invalid_budget_names_the_field_and_the_fix() -> None:
    from controltower.errors import ConfigError

    bad = CONFIG + "  - {scope: project, window: fortnight, usd: 1}\n  - {scope: user}\n"
    with pytest.raises(ConfigError) as found:
        config(bad)
    text = str(found.value)
    assert "budgets[2].window" in text or "budgets.2.window" in text or "window" in text
    assert "needs a limit" in text and "usd: 10" in text


@pytest.mark.parametrize("mode", ["closed", "open"])
def test_unreachable_counters_fail_closed_or_open_as_the_budget_says(mode: str) -> None:
    text = f"""
redis_url: redis://127.0.0.1:9/0
models:
  - name: demo
    deployments: [{{provider: mock, model: demo-1, price: {{input: 1, output: 1}}}}]
budgets:
  - {{scope: project, usd: 5, redis_down: {mode}}}
"""
    with running_gateway(config(text)) as gw:
        client = gw.client()
        if mode == "closed":
            with pytest.raises(openai.InternalServerError) as refused:
                call(client, max_tokens=5)
            assert refused.value.status_code == 503
            assert refused.value.code == "budgets_unavailable"  # type: ignore[attr-defined]
        else:
            call(client, max_tokens=5)
        assert gw.app.gateway.limits.unavailable >= 1  # type: ignore[union-attr]
