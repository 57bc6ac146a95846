"""Per-token cost from a maintained price table, with per-deployment overrides."""

from controltower.cost.prices import PriceTable

__all__ = ["PriceTable"]
