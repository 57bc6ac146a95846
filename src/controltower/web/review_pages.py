"""Human review: annotation queues over run results or traces, scored against a rubric.

- `/review`: the queues with their progress, and the form that makes one (from a run: all
  results, the failed ones, a sample; or from traces by the trace list's filters).
- `/review/{queue}`: its rubric, progress and tasks, and assignment to reviewers.
- `/review/{queue}/next`: the reviewer's next task (claimed for them), then
  `/review/{queue}/tasks/{id}`: the item and the rubric; the form posts the scores (or a
  skip) and moves on. Every form works without the script; `review.js` adds the keys.

The reviewer is a name typed once and kept in a cookie (the UI has one master key, not
users). Forms carry a CSRF token (`review_forms.FormGuard`).
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from controltower.domain import now_us
from controltower.domain.review import HumanScore, ReviewQueue, ReviewTask, check_reviewer
from controltower.errors import APIError, InvalidRequest, NotFound
from controltower.evals.review import create_queue, export_jsonl, trace_scores
from controltower.evals.store import EvalStore
from controltower.tracing import ObservabilityStore
from controltower.web import review_views as views
from controltower.web.review_forms import (
    Form,
    FormGuard,
    form_value,
    read_form,
    remember_reviewer,
    reviewer_of,
)
from controltower.web.views import Handler, Renderer, guarded, read

log = logging.getLogger("controltower.web")


def review_page_routes(
    store: EvalStore, traces: ObservabilityStore, renderer: Renderer
) -> list[BaseRoute]:
    """The routes of the review queues."""
    return ReviewPages(store, traces, renderer).routes()


def _see_other(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


class ReviewPages:
    """Handlers of the review pages; each reads or posts through the store, then renders
    or redirects (a POST answers 303, so a reload never posts twice)."""

    def __init__(self, store: EvalStore, traces: ObservabilityStore, renderer: Renderer) -> None:
        self.store, self.traces, self.renderer = store, traces, renderer
        self.guard = FormGuard()

    def routes(self) -> list[BaseRoute]:
        """The routes (`/review/reviewer` before the queue's own)."""

        def route(path: str, handler: Handler, *methods: str) -> Route:
            run = guarded(self.renderer, handler)
            return Route(path, run, methods=list(methods or ["GET"]), include_in_schema=False)

        return [
            route("/review", self.queues, "GET", "POST"),
            route("/review/reviewer", self.set_reviewer, "POST"),
            route("/review/{queue}", self.queue),
            route("/review/{queue}/assign", self.assign, "POST"),
            route("/review/{queue}/next", self.next_task),
            route("/review/{queue}/export", self.export),
            route("/review/{queue}/tasks/{task:int}", self.task, "GET", "POST"),
        ]

    # -- pages ------------------------------------------------------------------------------

    async def queues(self, request: Request) -> Response:
        """The queues and the new-queue form; a POST makes a queue."""
        if request.method == "GET":
            return await self._queues(request, {}, None, 200)
        form = await self._posted(request)
        if form is None:
            return self._expired(request)
        try:
            name, source, rubric = views.queue_form(form)
            queue, added = await read(
                create_queue,
                self.store,
                self.traces,
                name=name,
                rubric=rubric,
                source=source,
                created_by=reviewer_of(request),
            )
        except APIError as exc:
            return await self._queues(request, form, exc.message, exc.status)
        return _see_other(f"/review/{queue.id}?created={added}")

    async def set_reviewer(self, request: Request) -> Response:
        """Keep the name the reviewer typed, and go back."""
        form = await self._posted(request)
        if form is None:
            return self._expired(request)
        after = form_value(form, "next")
        after = after if after.startswith("/review") and "\\" not in after else "/review"
        try:
            name = check_reviewer(form_value(form, "reviewer"))
        except InvalidRequest as exc:
            return self.renderer.error(request, 400, "Enter your name", exc.message)
        response = _see_other(after)
        remember_reviewer(self.guard, request, response, name)
        return response

    async def queue(self, request: Request) -> Response:
        """A queue's rubric, progress, tasks and assignment forms."""
        found = await read(views.queue_view, self.store, request.path_params["queue"], now_us())
        notice = {k: request.query_params.get(k) for k in ("created", "assigned", "finished")}
        return self._page(request, "review_queue.html", notice=notice, **found)

    async def assign(self, request: Request) -> Response:
        """Assign the tasks selected (or the next N nobody has) to a reviewer, or to none."""
        queue = await read(self.store.get_queue, request.path_params["queue"])
        form = await self._posted(request)
        if form is None:
            return self._expired(request)
        assignee = form_value(form, "assignee") or None
        ids = [int(v) for v in form.get("task", []) if v.isdigit()]
        count = form_value(form, "count")
        if count.isdigit():
            free = await read(self.store.list_tasks, queue.id, status="pending", limit=5000)
            ids = [t.id for t in free if t.assignee is None][: int(count)]
        try:
            done = await read(self.store.assign, queue.id, ids, assignee)
        except InvalidRequest as exc:
            return self.renderer.error(request, 400, "Cannot assign", exc.message)
        return _see_other(f"/review/{queue.id}?assigned={done}")

    async def next_task(self, request: Request) -> Response:
        """Claim the reviewer's next task and open it (their name first, if unknown)."""
        queue = await read(self.store.get_queue, request.path_params["queue"])
        reviewer = reviewer_of(request)
        if reviewer is None:
            return self._page(request, "review_task.html", queue=queue, task=None)
        task = await read(self.store.next_task, queue.id, reviewer)
        if task is None:
            return _see_other(f"/review/{queue.id}?finished=1")
        return _see_other(f"/review/{queue.id}/tasks/{task.id}")

    async def task(self, request: Request) -> Response:
        """The review screen; a POST scores (or skips) the task and goes to the next."""
        queue = await read(self.store.get_queue, request.path_params["queue"])
        task = await read(self.store.get_task, request.path_params["task"])
        if task.queue_id != queue.id:
            raise NotFound(f"queue {queue.name!r} has no task {task.id}")
        reviewer = reviewer_of(request)
        if request.method == "GET":
            if reviewer is not None and task.status == "pending":
                await read(self.store.claim, task.id, reviewer)
                task = await read(self.store.get_task, task.id)
            score = await read(self.store.task_score, task.id)
            comment = score.comment if score is not None else None
            chosen = views.chosen_values(score, queue)
            return await self._task(request, queue, task, chosen, comment or "", None, 200)
        form = await self._posted(request)
        if form is None:
            return self._expired(request)
        if reviewer is None:
            return self._page(request, "review_task.html", 400, queue=queue, task=None)
        if form_value(form, "action") == "reopen":
            await read(self.store.reopen, task.id)
            return _see_other(f"/review/{queue.id}/tasks/{task.id}")
        values, comment = views.score_form(form, queue)
        try:
            if form_value(form, "action") == "skip":
                await read(self.store.skip, task.id, reviewer)
            else:
                score = await read(self.store.submit_score, task.id, reviewer, values, comment)
                await read(self._mirror_to_trace, queue, task, score)
        except InvalidRequest as exc:
            return await self._task(request, queue, task, values, comment, exc.message, 400)
        return _see_other(f"/review/{queue.id}/next")

    async def export(self, request: Request) -> Response:
        """The queue's human scores as a JSONL download."""
        queue = await read(self.store.get_queue, request.path_params["queue"])
        scores = await read(self.store.human_scores, queue_id=queue.id)
        filename = queue.name.replace("/", "_") + "-scores.jsonl"
        headers = {
            "content-disposition": f'attachment; filename="{filename}"',
            "cache-control": "no-store",
        }
        return Response(export_jsonl(queue, scores), 200, headers, "application/x-ndjson")

    # -- helpers ----------------------------------------------------------------------------

    def _page(self, request: Request, template: str, status: int = 200, **context: Any) -> Response:
        reviewer = reviewer_of(request)
        return self.guard.page(
            self.renderer, request, template, status, section="review", reviewer=reviewer,
            **context,
        )  # fmt: skip

    async def _posted(self, request: Request) -> Form | None:
        form = await read_form(request)
        return form if self.guard.check(request, form) else None

    def _expired(self, request: Request) -> Response:
        return self.guard.expired(self.renderer, request)

    async def _queues(
        self, request: Request, form: Form, error: str | None, status: int
    ) -> Response:
        rows = await read(views.queue_rows, self.store)
        runs = await read(views.recent_runs, self.store)
        return self._page(
            request,
            "review_queues.html",
            status,
            rows=rows,
            runs=runs,
            form=views.form_echo(form),
            scales=views.SCALES,
            error=error,
            open_form=error is not None or "new" in request.query_params,
        )

    async def _task(
        self,
        request: Request,
        queue: ReviewQueue,
        task: ReviewTask,
        chosen: dict[str, str],
        comment: str,
        error: str | None,
        status: int,
    ) -> Response:
        item = await read(views.task_view, self.store, self.traces, queue, task)
        progress = await read(self.store.queue_progress, queue.id)
        reviewer = reviewer_of(request)
        open_by = task.claimed(now_us()) if task.status == "pending" else None
        return self._page(
            request,
            "review_task.html",
            status,
            queue=queue,
            task=task,
            item=item,
            progress=progress,
            criteria=views.criteria_view(queue, chosen),
            comment=comment,
            error=error,
            open_by=open_by if open_by != reviewer else None,
            assigned_elsewhere=task.assignee not in (None, reviewer),
        )

    def _mirror_to_trace(self, queue: ReviewQueue, task: ReviewTask, score: HumanScore) -> None:
        """Also keep the scores as `human` scores of the item's trace, so the trace page
        shows them; the review's score is stored already, so a failure is only logged."""
        trace_id = task.item.trace_id or views.result_trace(self.store, task.item)
        if trace_id is None:
            return
        try:
            if self.traces.get_trace(trace_id, span_io=False) is not None:
                self.traces.write_scores(trace_scores(queue, score, trace_id))
        except APIError as exc:
            log.warning("review task %s: scores not added to trace %s: %s", task.id, trace_id, exc)
