"""Human review: annotation queues over run results or traces, scored against a rubric."""

from __future__ import annotations

from starlette.routing import BaseRoute

from controltower.evals.store import EvalStore
from controltower.tracing import ObservabilityStore
from controltower.web.views import Renderer


def review_page_routes(
    store: EvalStore, traces: ObservabilityStore, renderer: Renderer
) -> list[BaseRoute]:
    """The routes of the review queues."""
    return []
