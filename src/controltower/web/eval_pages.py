"""The eval pages: runs over time, a run's results, two runs side by side, datasets."""

from __future__ import annotations

from starlette.routing import BaseRoute

from controltower.evals.store import EvalStore
from controltower.tracing import ObservabilityStore
from controltower.web.views import Renderer


def eval_page_routes(
    store: EvalStore, traces: ObservabilityStore, renderer: Renderer
) -> list[BaseRoute]:
    """The routes of the eval and dataset pages."""
    return []
