"""The web UI: server-rendered pages over the trace store."""

from __future__ import annotations

from starlette.routing import BaseRoute

from controltower.tracing import ObservabilityStore

__all__ = ["web_routes"]


def web_routes(store: ObservabilityStore) -> list[BaseRoute]:
    """The UI's pages and static files."""
    return []
