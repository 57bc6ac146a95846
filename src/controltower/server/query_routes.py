"""The read API over stored traces, sessions, users, scores and spend, and per-user deletion."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from controltower.access.principal import Principal
from controltower.domain import SCORE_SOURCES, Score, new_span_id, now_us
from controltower.errors import InvalidRequest, NotFound, RequestTooLarge
from controltower.server.auth import principal_of
from controltower.store.serialize import score_row_to_api, score_to_row
from controltower.tracing import ObservabilityStore
from controltower.tracing.params import group_filter, page_size, trace_filter
from controltower.tracing.query import GroupFilter
from controltower.tracing.spend import spend_query

_MAX_TEXT = 10_000  # characters of a score's comment
_MAX_BODY = 64 * 1024
_SETTLE_S = 1.0  # the longest a score waits for the trace writer to store its trace


def json_response(content: Any, status: int = 200) -> Response:
    """A JSON answer encoded with orjson (traces hold large payloads)."""
    return Response(orjson.dumps(content), status_code=status, media_type="application/json")


class QueryRoutes:
    """Handlers of /api/traces, /api/sessions, /api/users, /api/scores and /api/spend."""

    def __init__(
        self, store: ObservabilityStore, settle: Callable[[float], bool] | None = None
    ) -> None:
        self.store = store
        # waits (at most the seconds given) until the traces queued so far are written
        self.settle = settle

    def routes(self) -> list[BaseRoute]:
        """The routes, in the order Starlette should match them."""
        return [
            Route("/api/traces", self.list_traces),
            Route("/api/traces/{trace_id}", self.get_trace),
            Route("/api/traces/{trace_id}/spans/{span_id}", self.get_span),
            Route("/api/sessions", self.list_sessions),
            Route("/api/sessions/{session_id}", self.get_session),
            Route("/api/users", self.list_users),
            Route("/api/users/{user_id}", self.get_user),
            Route("/api/users/{user_id}/data", self.delete_user_data, methods=["DELETE"]),
            Route("/api/scores", self.list_scores, methods=["GET"]),
            Route("/api/scores", self.create_score, methods=["POST"]),
            Route("/api/spend", self.spend_report),
        ]

    async def list_traces(self, request: Request) -> Response:
        """List traces, newest first.
        ---
        summary: List traces, newest first, with filters
        description: >
          Pages are keyset cursors; pass next_cursor back as cursor. Each trace comes
          without its spans, and with previews of long inputs and outputs (the whole
          values are in GET /api/traces/{trace_id}).
        parameters: [since, until, name, user, session, model, status, tags, metadata,
          min_cost, min_latency, q, project, cursor, limit]
        responses:
          200:
            description: A page of traces
            content: {application/json: {schema: {$ref: "#/components/schemas/TracePage"}}}
          400: {description: "An invalid filter, named in error.param"}
        """
        params = request.query_params
        where = trace_filter(params, now_us())
        where = replace(where, project=principal_of(request.scope).scoped(where.project))
        limit, cursor = page_size(params), params.get("cursor") or None
        data, next_cursor = await run_in_threadpool(self.store.list_traces, limit, cursor, where)
        return json_response({"data": data, "next_cursor": next_cursor})

    async def get_trace(self, request: Request) -> Response:
        """One trace.
        ---
        summary: One trace with its spans (in start order) and its scores
        responses:
          200:
            description: The trace
            content: {application/json: {schema: {$ref: "#/components/schemas/Trace"}}}
          404: {description: No such trace}
        """
        trace_id = request.path_params["trace_id"]
        trace = await run_in_threadpool(self.store.get_trace, trace_id)
        if trace is None or not principal_of(request.scope).sees(trace["project"]):
            raise NotFound(f"No trace with id {trace_id!r}", param="trace_id")
        return json_response(trace)

    async def get_span(self, request: Request) -> Response:
        """One span.
        ---
        summary: One span of a trace, with its full input and output
        responses:
          200:
            description: The span
            content: {application/json: {schema: {$ref: "#/components/schemas/Span"}}}
          404: {description: No such span}
        """
        trace_id, span_id = request.path_params["trace_id"], request.path_params["span_id"]
        span = await run_in_threadpool(self.store.get_span, trace_id, span_id)
        if span is not None and not await self._visible(request, trace_id):
            span = None
        if span is None:
            raise NotFound(f"No span {span_id!r} in trace {trace_id!r}", param="span_id")
        return json_response(span)

    async def list_sessions(self, request: Request) -> Response:
        """List sessions.
        ---
        summary: List sessions (conversations), most recently active first
        parameters: [since, until, user, project, cursor, limit]
        responses:
          200:
            description: A page of sessions
            content: {application/json: {schema: {$ref: "#/components/schemas/SessionPage"}}}
        """
        params = request.query_params
        where = _scoped_groups(request, group_filter(params, now_us()))
        limit, cursor = page_size(params), params.get("cursor") or None
        data, next_cursor = await run_in_threadpool(self.store.list_sessions, limit, cursor, where)
        return json_response({"data": data, "next_cursor": next_cursor})

    async def get_session(self, request: Request) -> Response:
        """One session.
        ---
        summary: One session - its totals and its traces in the order they started
        parameters: [project]
        responses:
          200:
            description: The session with its traces (at most 1,000)
            content:
              application/json: {schema: {$ref: "#/components/schemas/SessionWithTraces"}}
          404: {description: No such session}
        """
        session_id = request.path_params["session_id"]
        project = _project(request)
        session = await run_in_threadpool(self.store.get_session, session_id, project)
        if session is None:
            raise NotFound(f"No session with id {session_id!r}", param="session_id")
        return json_response(session)

    async def list_users(self, request: Request) -> Response:
        """List end users.
        ---
        summary: List end users with their trace count, tokens and cost
        parameters: [since, until, project, cursor, limit]
        responses:
          200:
            description: A page of users
            content: {application/json: {schema: {$ref: "#/components/schemas/UserPage"}}}
        """
        params = request.query_params
        where = _scoped_groups(request, group_filter(params, now_us()))
        limit, cursor = page_size(params), params.get("cursor") or None
        data, next_cursor = await run_in_threadpool(self.store.list_users, limit, cursor, where)
        return json_response({"data": data, "next_cursor": next_cursor})

    async def get_user(self, request: Request) -> Response:
        """One end user.
        ---
        summary: One user's totals - traces, sessions, tokens, cost, first and last seen
        parameters: [project]
        responses:
          200:
            description: The user
            content: {application/json: {schema: {$ref: "#/components/schemas/User"}}}
          404: {description: No traces of this user}
        """
        user_id = request.path_params["user_id"]
        project = _project(request)
        user = await run_in_threadpool(self.store.get_user, user_id, project)
        if user is None:
            raise NotFound(f"No traces of user {user_id!r}", param="user_id")
        return json_response(user)

    async def delete_user_data(self, request: Request) -> Response:
        """Delete one user's data.
        ---
        summary: Delete every trace, span and score of one user (GDPR erasure)
        parameters: [project]
        responses:
          200:
            description: What was deleted
            content: {application/json: {schema: {$ref: "#/components/schemas/Deleted"}}}
        """
        user_id = request.path_params["user_id"]
        project = _project(request)
        deleted = await run_in_threadpool(self.store.delete_user_data, user_id, project)
        return json_response({"user_id": user_id, "deleted": deleted})

    async def spend_report(self, request: Request) -> Response:
        """Spend of the gateway's calls.
        ---
        summary: Spend, tokens, requests and cache savings by one dimension over time buckets
        parameters: [spend_by, spend_interval, since, until, project, spend_limit]
        responses:
          200:
            description: The report; an API key sees its own project's spend only
            content: {application/json: {schema: {$ref: "#/components/schemas/SpendReport"}}}
        """
        query = spend_query(request.query_params, now_us())
        query = replace(query, project=principal_of(request.scope).scoped(query.project))
        return json_response(await run_in_threadpool(self.store.spend_report, query))

    async def list_scores(self, request: Request) -> Response:
        """List scores.
        ---
        summary: List scores, newest first, of one trace and/or one name
        parameters: [score_trace, score_name, limit]
        responses:
          200:
            description: The scores
            content: {application/json: {schema: {$ref: "#/components/schemas/ScoreList"}}}
        """
        params = request.query_params
        limit = page_size(params)
        trace_id, name = params.get("trace_id") or None, params.get("name") or None
        if not principal_of(request.scope).is_master:
            # an API key lists the scores of one trace of its project at a time
            if trace_id is None:
                raise InvalidRequest("An API key lists scores by `trace_id`", param="trace_id")
            if not await self._visible(request, trace_id):
                raise NotFound(f"No trace with id {trace_id!r}", param="trace_id")
        data = await run_in_threadpool(self.store.list_scores, trace_id, name, limit)
        return json_response({"data": data})

    async def create_score(self, request: Request) -> Response:
        """Add a score.
        ---
        summary: Add a score (feedback) to a trace or one of its spans
        description: >
          The value is a number, true/false or a category string; an id replaces the
          earlier score of that id. The trace (and the span, when given) must exist: a
          trace still in the write queue is waited for, up to a second.
        requestBody:
          required: true
          content: {application/json: {schema: {$ref: "#/components/schemas/NewScore"}}}
        responses:
          201:
            description: The stored score
            content: {application/json: {schema: {$ref: "#/components/schemas/Score"}}}
          400: {description: "A missing or invalid field, named in error.param"}
          404: {description: "No such trace, or no such span in it (named in error.param)"}
          413: {description: The body is over 64 KiB}
        """
        score = score_from_body(await _json_body(request))
        principal = principal_of(request.scope)
        missing = await run_in_threadpool(self._missing_target, score, principal)
        if missing is not None and self.settle is not None:
            # a trace the gateway has just answered may still wait in the write queue
            await run_in_threadpool(self.settle, _SETTLE_S)
            missing = await run_in_threadpool(self._missing_target, score, principal)
        if missing is not None:
            raise missing
        await run_in_threadpool(self.store.write_scores, [score])
        return json_response(score_row_to_api(score_to_row(score)), status=201)

    async def _visible(self, request: Request, trace_id: str) -> bool:
        """Whether the caller may see this trace (the administrator sees every one)."""
        principal = principal_of(request.scope)
        if principal.is_master:
            return True
        trace = await run_in_threadpool(self.store.get_trace, trace_id, False)
        return trace is not None and principal.sees(trace["project"])

    def _missing_target(self, score: Score, principal: Principal) -> NotFound | None:
        """The 404 of a score whose trace or span is not stored (or not in the caller's
        project), or None."""
        trace = self.store.get_trace(score.trace_id, span_io=False)
        if trace is None or not principal.sees(trace["project"]):
            return NotFound(f"No trace with id {score.trace_id!r}", param="trace_id")
        if score.span_id is not None and self.store.get_span(score.trace_id, score.span_id):
            return None
        if score.span_id is None:
            return None
        return NotFound(f"No span {score.span_id!r} in trace {score.trace_id!r}", param="span_id")


def _project(request: Request) -> str | None:
    """The project a read asks for, scoped to the caller's (see `Principal.scoped`)."""
    asked = request.query_params.get("project") or None
    return principal_of(request.scope).scoped(asked)


def _scoped_groups(request: Request, where: GroupFilter) -> GroupFilter:
    return replace(where, project=principal_of(request.scope).scoped(where.project))


def score_from_body(body: Any) -> Score:
    """A Score from a JSON body; InvalidRequest names the field that is wrong."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object")
    trace_id, name = _optional_str(body, "trace_id"), _optional_str(body, "name")
    if trace_id is None:
        raise InvalidRequest("`trace_id` is required and must be a string", param="trace_id")
    if name is None or not name.strip():
        raise InvalidRequest("`name` is required and must be a non-empty string", param="name")
    value = body.get("value")
    if isinstance(value, str):
        value = _optional_str(body, "value")
    if not isinstance(value, int | float | str) or not _finite(value):
        raise InvalidRequest(
            "`value` must be a finite number, true or false, or a non-empty category string",
            param="value",
        )
    source = body.get("source", "api")
    if source not in SCORE_SOURCES:
        raise InvalidRequest(f"`source` must be one of {', '.join(SCORE_SOURCES)}", param="source")
    return Score(
        id=_optional_str(body, "id") or new_span_id() + new_span_id(),
        trace_id=trace_id,
        span_id=_optional_str(body, "span_id"),
        name=name.strip(),
        value=value,
        created_us=now_us(),
        source=source,
        comment=_optional_str(body, "comment", _MAX_TEXT),
        author=_optional_str(body, "author"),
    )


def _optional_str(body: dict[str, Any], key: str, max_len: int = 256) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_len:
        raise InvalidRequest(f"`{key}` must be a string of at most {max_len} characters", param=key)
    if "\x00" in value:  # no database keeps NUL in text
        raise InvalidRequest(f"`{key}` must not hold NUL characters", param=key)
    return value or None


def _finite(value: float | str) -> bool:
    if isinstance(value, str):
        return True
    try:
        return math.isfinite(float(value))  # the store keeps numbers as doubles
    except OverflowError:
        return False


async def _json_body(request: Request) -> Any:
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > _MAX_BODY:
            raise RequestTooLarge(f"The request body is over {_MAX_BODY} bytes")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}") from None
