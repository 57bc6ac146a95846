"""The eval pages: runs over time, a run's results, two runs side by side, datasets."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from controltower.evals.store import EvalStore
from controltower.tracing import ObservabilityStore
from controltower.web.dataset_pages import dataset_page_routes
from controltower.web.eval_views import (
    RunFilters,
    compare_view,
    page_number,
    run_view,
    runs_view,
)
from controltower.web.views import Renderer, guarded, read


def eval_page_routes(
    store: EvalStore, traces: ObservabilityStore, renderer: Renderer
) -> list[BaseRoute]:
    """The routes of the eval and dataset pages."""

    async def runs_page(request: Request) -> Response:
        params = request.query_params
        filters = RunFilters.of(params, params.getlist("param"))
        sort = params.get("sort")
        found = await read(runs_view, store, filters, sort, params.get("desc") == "1")
        query: dict[str, Any] = dict(params)
        if params.getlist("param"):
            query["param"] = params.getlist("param")  # a filter per value, kept in links
        return renderer.page(request, "evals.html", section="evals", query_params=query, **found)

    async def run_page(request: Request) -> Response:
        params = request.query_params
        page = page_number(params.get("page"))
        run_id = request.path_params["run_id"]
        found = await read(
            run_view,
            store,
            run_id,
            params.get("failed") == "1",
            params.get("q"),
            page,
            params.get("scorer") or None,
        )
        return renderer.page(
            request, "eval_run.html", section="evals", query_params=dict(params), **found
        )

    async def compare_page(request: Request) -> Response:
        params = request.query_params
        found = await read(compare_view, store, params.get("a"), params.get("b"))
        return renderer.page(request, "eval_compare.html", section="evals", **found)

    return [
        Route("/evals", guarded(renderer, runs_page), include_in_schema=False),
        Route("/evals/compare", guarded(renderer, compare_page), include_in_schema=False),
        Route("/evals/runs/{run_id}", guarded(renderer, run_page), include_in_schema=False),
        *dataset_page_routes(store, renderer),
    ]
