"""PriceTable: prices from genai-prices, cache reads, overrides, and unknown models."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from genai_prices import Usage as PriceUsage
from genai_prices import calc_price

from controltower.cost import PriceTable
from controltower.domain import Span, Trace, TraceRecord, Usage


def span(**fields: Any) -> Span:
    defaults: dict[str, Any] = {
        "id": "b7ad6b7169203331",
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
        "name": "chat",
        "kind": "generation",
        "start_us": 1,
        "model": "gpt-4o-mini",
        "provider": "openai",
    }
    return Span(**{**defaults, **fields})


def reference(model: str, provider: str, input_: int, output: int, cached: int = 0) -> float:
    usage = PriceUsage(input_tokens=input_, output_tokens=output, cache_read_tokens=cached)
    return float(calc_price(usage, model_ref=model, provider_id=provider).total_price)


def test_known_model_costs_what_genai_prices_computes() -> None:
    usage = Usage(input_tokens=12_345, output_tokens=678)
    cost = PriceTable().cost(span(usage=usage))
    assert cost == pytest.approx(reference("gpt-4o-mini", "openai", 12_345, 678))
    # $0.15 / $0.60 per million tokens
    assert cost == pytest.approx((12_345 * 0.15 + 678 * 0.60) / 1e6)


def test_cached_tokens_are_priced_at_the_cache_read_rate() -> None:
    usage = Usage(input_tokens=10_000, output_tokens=500, cached_tokens=8_000)
    cost = PriceTable().cost(span(usage=usage))
    assert cost == pytest.approx(reference("gpt-4o-mini", "openai", 10_000, 500, cached=8_000))
    assert cost == pytest.approx((2_000 * 0.15 + 8_000 * 0.075 + 500 * 0.60) / 1e6)
    uncached = PriceTable().cost(span(usage=Usage(input_tokens=10_000, output_tokens=500)))
    assert cost is not None and uncached is not None and cost < uncached


def test_price_override_wins() -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=2_000_000, cached_tokens=400_000)
    cost = PriceTable().cost(span(usage=usage, price_override=(1.0, 2.0, 0.5)))
    assert cost == pytest.approx(600_000 * 1.0 / 1e6 + 400_000 * 0.5 / 1e6 + 4.0)


def test_override_without_cached_price_charges_cached_tokens_as_input() -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=0, cached_tokens=400_000)
    cost = PriceTable().cost(span(usage=usage, price_override=(3.0, 9.0, None)))
    assert cost == pytest.approx(3.0)


def test_zero_override_prices_an_unknown_model_at_zero(caplog: pytest.LogCaptureFixture) -> None:
    usage = Usage(input_tokens=10, output_tokens=10)
    cost = PriceTable().cost(span(model="in-house-llm", usage=usage, price_override=(0, 0, None)))
    assert cost == 0.0
    assert not caplog.records


def test_unknown_model_costs_none_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    table = PriceTable()
    unknown = span(model="no-such-model-xyz", usage=Usage(input_tokens=10, output_tokens=5))
    with caplog.at_level(logging.WARNING, logger="controltower.cost"):
        costs = [table.cost(unknown) for _ in range(5)]
    assert costs == [None] * 5
    warnings = [r for r in caplog.records if r.name == "controltower.cost"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "no-such-model-xyz" in warnings[0].getMessage()
    assert "price:" in warnings[0].getMessage()


def test_no_usage_costs_none() -> None:
    assert PriceTable().cost(span(usage=Usage())) is None
    assert PriceTable().cost(span(usage=Usage(input_tokens=0, output_tokens=0))) == 0.0


def test_only_output_tokens_known() -> None:
    cost = PriceTable().cost(span(usage=Usage(output_tokens=1_000_000)))
    assert cost == pytest.approx(0.60)


def test_price_record_only_touches_generation_spans_without_cost() -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    to_price = span(usage=usage)
    already = span(usage=usage, cost=1.25)
    attempt = span(kind="span", usage=usage)
    nameless = span(model=None, usage=usage)
    tool = span(kind="tool", usage=usage)
    trace = Trace(id="0af7651916cd43dd8448eb211c80319c", name="chat", start_us=1)
    record = TraceRecord(trace, [to_price, already, attempt, nameless, tool])

    PriceTable().price_record(record)

    assert to_price.cost == pytest.approx(0.75)
    assert already.cost == 1.25
    assert attempt.cost is None
    assert nameless.cost is None
    assert tool.cost is None
