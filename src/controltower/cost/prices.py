"""Prices from the `genai-prices` package, looked up once per model and kept."""

from __future__ import annotations

import logging
import threading
from decimal import Decimal
from typing import Any

from controltower.domain import Span, TraceRecord, Usage
from controltower.domain.trace import USAGE_KINDS

log = logging.getLogger("controltower.cost")

# (input, output, cached input) in USD per million tokens; cached None = input price
Prices = tuple[float, float, float | None]

# our provider names → genai-prices provider ids
_PROVIDER_IDS = {"openai": "openai", "anthropic": "anthropic", "azure": "azure"}


class PriceTable:
    """Answers `cost(span)`; an unknown model costs None (and one warning), never a silent 0."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str | None, str], Prices | Any | None] = {}
        self._lock = threading.Lock()

    def price_record(self, record: TraceRecord) -> None:
        """Set the cost of every model-call span of a trace that has usage but no cost."""
        for span in record.spans:
            if span.kind in USAGE_KINDS and span.cost is None and span.model:
                span.cost = self.cost(span)

    def cost(self, span: Span) -> float | None:
        """USD for the span's usage, from its override or the table."""
        return self.usage_cost(span.provider, span.model or "", span.usage, span.price_override)

    def usage_cost(
        self, provider: str | None, model: str, usage: Usage, override: Prices | None = None
    ) -> float | None:
        """USD for a model's usage, from `override` or the table (None: no price known)."""
        if usage.input_tokens is None and usage.output_tokens is None:
            return None
        prices = override or self._lookup(provider, model)
        if prices is None:
            return None
        if isinstance(prices, tuple):
            return _apply(prices, usage)
        return _tiered(prices, usage)

    def _lookup(self, provider: str | None, model: str) -> Prices | Any | None:
        key = (provider, model)
        if key in self._cache:
            return self._cache[key]
        with self._lock:
            if key not in self._cache:  # another thread may have looked it up meanwhile
                self._cache[key] = _from_genai_prices(provider, model)
        return self._cache[key]


def _apply(prices: Prices, usage: Usage) -> float:
    input_price, output_price, cached_price = prices
    cached = usage.cached_tokens or 0
    fresh = max(0, (usage.input_tokens or 0) - cached)
    cached_rate = input_price if cached_price is None else cached_price
    total = fresh * input_price + cached * cached_rate + (usage.output_tokens or 0) * output_price
    return total / 1_000_000


def _from_genai_prices(provider: str | None, model: str) -> Prices | Any | None:
    from genai_prices import Usage as PriceUsage
    from genai_prices import calc_price

    try:
        found = calc_price(
            PriceUsage(input_tokens=1, output_tokens=1),
            model_ref=model,
            provider_id=_PROVIDER_IDS.get(provider or ""),
        )
    except LookupError:
        log.warning(
            "no price known for model %r (provider %s): its cost is recorded as null; "
            "set `price:` on the deployment to fix this",
            model,
            provider,
        )
        return None
    mp = found.model_price
    flat: list[Any] = [mp.input_mtok, mp.output_mtok, mp.cache_read_mtok]
    if all(v is None or isinstance(v, Decimal | int) for v in flat):
        cached = None if flat[2] is None else float(flat[2])
        return (float(flat[0] or 0), float(flat[1] or 0), cached)
    return mp  # tiered prices: let genai-prices do the arithmetic


def _tiered(model_price: Any, usage: Usage) -> float:
    from genai_prices import Usage as PriceUsage

    result = model_price.calc_price(
        PriceUsage(
            input_tokens=usage.input_tokens or 0,
            output_tokens=usage.output_tokens or 0,
            cache_read_tokens=usage.cached_tokens or 0,
        )
    )
    return float(result["total_price"])
