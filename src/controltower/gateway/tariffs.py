"""What the deployments of an alias charge, and what one call cost at the one that answered."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from controltower.cost import PriceTable
from controltower.domain import Span, Usage
from controltower.settings import Deployment

DEFAULT_OUTPUT_TOKENS = 4096


@dataclass(frozen=True, slots=True)
class Tariff:
    """What one deployment charges: its provider, model and prices (config or table)."""

    provider: str
    model: str
    override: tuple[float, float, float | None] | None
    max_output: int


def tariff_of(deployment: Deployment) -> Tariff:
    """A deployment's tariff, from its config."""
    price = deployment.price
    override = None if price is None else (price.input, price.output, price.cached_input)
    return Tariff(
        deployment.provider,
        deployment.model,
        override,
        deployment.max_output_tokens or DEFAULT_OUTPUT_TOKENS,
    )


class Pricer:
    """The tariffs of an alias's chain (its deployments and its fallbacks'), by label."""

    def __init__(self, prices: PriceTable, tariffs: dict[str, Tariff]) -> None:
        self.prices = prices
        self.tariffs = tariffs
        self.all = list(tariffs.values())

    def answered(self, request: Any) -> Tariff | None:
        """The tariff of the deployment that answered the request (its last good attempt)."""
        spans = request.trace.spans if request.trace else []
        used = next((s for s in reversed(spans) if s.status == "ok"), spans[-1] if spans else None)
        tariff = self.tariffs.get(used.deployment or "") if isinstance(used, Span) else None
        if tariff is None and len(self.all) == 1:
            tariff = self.all[0]
        return tariff

    def usd(self, tariff: Tariff | None, usage: Usage) -> float | None:
        """What the usage costs at a tariff (None: no price known)."""
        if tariff is None:
            return None
        return self.prices.usage_cost(tariff.provider, tariff.model, usage, tariff.override)

    def cost(self, request: Any, usage: Usage) -> float | None:
        """What the request's answer cost, in USD, where the price is known."""
        return self.usd(self.answered(request), usage)
