"""The trace page's "Add to dataset": the trace becomes an item of a stored dataset.

The form (a dataset name, and whether the trace's output is the expected answer) posts to
`/traces/{id}/dataset` with a CSRF token (`review_forms.FormGuard`). The item is added
with `extend_dataset`, under the dataset's lock, so adds made at the same time all land;
a trace that is there already is left as it is. The answer is a 303 to the dataset's page,
which says what happened.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from controltower.domain.dataset import check_dataset_name
from controltower.errors import InvalidRequest
from controltower.evals.from_traces import item_from_trace
from controltower.evals.store import DatasetStore
from controltower.tracing import ObservabilityStore
from controltower.web.review_forms import FormGuard, form_value, read_form
from controltower.web.trace_pages import trace_view
from controltower.web.views import Renderer, guarded, read

MAX_NAMES = 500  # dataset names offered in the form's list


class AddToDataset:
    """The trace page's "Add to dataset" form, and the handler of what it posts."""

    def __init__(self, store: DatasetStore, traces: ObservabilityStore, renderer: Renderer) -> None:
        self.store, self.traces, self.renderer = store, traces, renderer
        self.guard = FormGuard()

    def routes(self) -> list[BaseRoute]:
        """The route the form posts to."""
        run = guarded(self.renderer, self.add)
        return [Route("/traces/{trace_id}/dataset", run, methods=["POST"], include_in_schema=False)]

    async def page(
        self,
        request: Request,
        found: dict[str, Any],
        status: int = 200,
        *,
        name: str = "",
        expected: bool = True,
        error: str | None = None,
    ) -> Response:
        """The trace page (`trace_view`'s `found`) with the form, and its CSRF cookie."""
        datasets = await read(self.store.list_datasets)
        form = {
            "names": [v.dataset for v in datasets[:MAX_NAMES]],
            "name": name,
            "expected": expected,
            "error": error,
        }
        return self.guard.page(
            self.renderer, request, "trace.html", status, section="traces", dataset_form=form,
            **found,
        )  # fmt: skip

    async def add(self, request: Request) -> Response:
        """Add the trace to the dataset the form names, then show that dataset."""
        trace_id = request.path_params["trace_id"]
        form = await read_form(request)
        if not self.guard.check(request, form):
            return self.guard.expired(self.renderer, request)
        name, expected = form_value(form, "dataset"), bool(form_value(form, "expected"))
        trace = await read(self.traces.get_trace, trace_id, span_io=False)
        if trace is None:
            return self.renderer.not_found(request, f"There is no trace with id {trace_id!r}.")
        try:
            check_dataset_name(name)
        except InvalidRequest as exc:
            found = await read(trace_view, self.traces, trace_id)
            if found is None:  # deleted in between
                return self.renderer.not_found(request, f"There is no trace with id {trace_id!r}.")
            return await self.page(
                request, found, 400, name=name, expected=expected, error=exc.message
            )
        item = item_from_trace(trace, expected=expected)
        message = f"trace {trace_id} added from the UI"
        version, new = await read(self.store.extend_dataset, name, [item], message=message)
        shown = {"version": str(version.version), "added" if new else "present": item.id}
        url = f"/datasets/{quote(name, safe='/')}?{urlencode(shown)}"
        return RedirectResponse(url, status_code=303)
