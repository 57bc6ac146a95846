"""Ingest routes: `POST /api/ingest` (the SDK's JSON batches) and `POST /v1/traces` (OTLP)."""

from __future__ import annotations

from starlette.routing import BaseRoute

from controltower.cost import PriceTable
from controltower.tracing import ObservabilityStore, TraceWriter


def ingest_routes(
    writer: TraceWriter, store: ObservabilityStore, prices: PriceTable, max_bytes: int
) -> list[BaseRoute]:
    """The ingest routes, feeding the trace writer (scores go straight to the store)."""
    return []
