"""The trace list (`/traces`) and the trace page (`/traces/{id}`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from controltower.domain import now_us
from controltower.errors import InvalidRequest
from controltower.tracing import ObservabilityStore
from controltower.tracing.params import TRACE_FILTER_PARAMS, page_size, trace_filter
from controltower.web.tree import ROW_COLUMNS, span_tree
from controltower.web.views import Renderer, guarded, read

if TYPE_CHECKING:
    from controltower.web.trace_dataset import AddToDataset

# score badges shown per trace in the list
LIST_SCORES_PER_TRACE = 5


def trace_routes(
    store: ObservabilityStore, renderer: Renderer, dataset_form: AddToDataset | None = None
) -> list[BaseRoute]:
    """The routes of the trace list and the trace page (with the "Add to dataset" form
    when `dataset_form` is given)."""

    async def trace_list(request: Request) -> Response:
        params = dict(request.query_params)
        try:
            where = trace_filter(params, now_us())
            limit = page_size(params)
            traces, next_cursor = await read(
                store.list_traces, limit=limit, cursor=params.get("cursor") or None, where=where
            )
            ids = [trace["id"] for trace in traces]
            scores = await read(store.scores_of_traces, ids, LIST_SCORES_PER_TRACE)
        except InvalidRequest as exc:
            return renderer.page(
                request, "traces.html", 400, **_list_context(params, [], None, {}, exc.message)
            )
        context = _list_context(params, traces, next_cursor, scores, None)
        return renderer.page(request, "traces.html", **context)

    async def trace_page(request: Request) -> Response:
        trace_id = request.path_params["trace_id"]
        found = await read(trace_view, store, trace_id)
        if found is None:
            return renderer.not_found(request, f"There is no trace with id {trace_id!r}.")
        if dataset_form is not None:
            return await dataset_form.page(request, found)
        return renderer.page(request, "trace.html", section="traces", **found)

    return [
        Route("/traces", guarded(renderer, trace_list), include_in_schema=False),
        Route("/traces/{trace_id}", guarded(renderer, trace_page), include_in_schema=False),
    ]


def _list_context(
    params: dict[str, str],
    traces: list[dict[str, Any]],
    next_cursor: str | None,
    scores: dict[str, list[dict[str, Any]]],
    error: str | None,
) -> dict[str, Any]:
    active = {name: params[name] for name in TRACE_FILTER_PARAMS if params.get(name, "").strip()}
    return {
        "section": "traces",
        "params": params,
        "active": active,
        "traces": traces,
        "scores": scores,
        "next_cursor": next_cursor,
        "error": error,
    }


def trace_view(store: ObservabilityStore, trace_id: str) -> dict[str, Any] | None:
    """What the trace page shows of a trace, or None when there is no such trace."""
    # The page carries the span tree as compact rows and no span inputs or outputs: the
    # script fetches one span's payloads when it is selected, so MBs of text stay server-side.
    trace = store.get_trace(trace_id, span_io=False)
    if trace is None:
        return None
    spans = trace.pop("spans", None) or []
    scores = trace.pop("scores", None) or []
    tree = span_tree(trace, spans)
    calls = call_summaries(spans)
    known_names = sorted({score["name"] for score in store.list_scores(limit=200)})
    data = {
        "trace": trace,
        "columns": ROW_COLUMNS,
        "rows": tree.rows,
        "duration_ms": tree.duration_ms,
        "scores": scores,
    }
    return {
        "trace": trace,
        "tree": tree,
        "scores": scores,
        "score_names": known_names,
        "data": data,
        "calls": calls,
        "failure": first_failure(spans) if trace["status"] == "error" else None,
    }


def call_summaries(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each gateway call of the trace that retried or fell back: its attempts, failures and
    the model alias that served it, for the badges at the top of the page."""
    attempts: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        if "attempt" in span["attributes"] and span["parent_id"]:
            attempts.setdefault(span["parent_id"], []).append(span)
    calls = []
    for span in spans:
        asked = span["attributes"].get("model_alias")
        tried = sorted(attempts.get(span["id"], []), key=lambda a: a["attributes"]["attempt"])
        if asked is None or not tried:
            continue
        served = next((a for a in reversed(tried) if a["status"] == "ok"), None)
        alias = served["attributes"].get("alias") if served else None
        failed = [a for a in tried if a["status"] == "error"]
        calls.append(
            {
                "span_id": span["id"],
                "asked": asked,
                "attempts": len(tried),
                "failed": len(failed),
                "fallback": alias if alias is not None and alias != asked else None,
                "served_by": served["deployment"] if served else None,
            }
        )
    return calls


def first_failure(spans: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The span whose error explains a failed trace: the root's, else the first to fail."""
    failed = [span for span in spans if span["status"] == "error"]
    if not failed:
        return None
    roots = [span for span in failed if span["parent_id"] is None]
    span = (roots or sorted(failed, key=lambda s: s["start_time"] or ""))[0]
    return {"span_id": span["id"], "name": span["name"], "error": span["error"] or "failed"}
