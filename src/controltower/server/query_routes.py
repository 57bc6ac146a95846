"""The read API over stored traces, sessions, users and scores, and per-user deletion."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from controltower.domain import SCORE_SOURCES, Score, new_span_id, now_us
from controltower.errors import InvalidRequest, NotFound, RequestTooLarge
from controltower.store.serialize import score_row_to_api, score_to_row
from controltower.tracing import ObservabilityStore
from controltower.tracing.params import group_filter, page_size, trace_filter

_MAX_TEXT = 10_000  # characters of a score's comment
_MAX_BODY = 64 * 1024


def json_response(content: Any, status: int = 200) -> Response:
    """A JSON answer encoded with orjson (traces hold large payloads)."""
    return Response(orjson.dumps(content), status_code=status, media_type="application/json")


class QueryRoutes:
    """Handlers of /api/traces, /api/sessions, /api/users and /api/scores."""

    def __init__(self, store: ObservabilityStore) -> None:
        self.store = store

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
        ]

    async def list_traces(self, request: Request) -> Response:
        """
        summary: List traces, newest first, with filters
        description: >
          Filters - since, until (ISO time or 30m, 24h, 7d), name, user, session, model,
          status (ok or error), tags (comma-separated, all must match), metadata
          (key or key=value, comma-separated), min_cost (USD), min_latency (ms, or 2s),
          q (text in input or output), project. Pages are keyset cursors; pass
          next_cursor back as cursor. limit is 1 to 200 (default 50).
        responses:
          200: {description: "{data: [trace], next_cursor: string or null}"}
          400: {description: An invalid filter, named in error.param}
        """
        params = request.query_params
        where = trace_filter(params, now_us())
        limit, cursor = page_size(params), params.get("cursor") or None
        data, next_cursor = await run_in_threadpool(self.store.list_traces, limit, cursor, where)
        return json_response({"data": data, "next_cursor": next_cursor})

    async def get_trace(self, request: Request) -> Response:
        """
        summary: One trace with its spans (in start order) and its scores
        responses:
          200: {description: The trace}
          404: {description: No such trace}
        """
        trace_id = request.path_params["trace_id"]
        trace = await run_in_threadpool(self.store.get_trace, trace_id)
        if trace is None:
            raise NotFound(f"No trace with id {trace_id!r}", param="trace_id")
        return json_response(trace)

    async def get_span(self, request: Request) -> Response:
        """
        summary: One span of a trace, with its full input and output
        responses:
          200: {description: The span}
          404: {description: No such span}
        """
        trace_id, span_id = request.path_params["trace_id"], request.path_params["span_id"]
        span = await run_in_threadpool(self.store.get_span, trace_id, span_id)
        if span is None:
            raise NotFound(f"No span {span_id!r} in trace {trace_id!r}", param="span_id")
        return json_response(span)

    async def list_sessions(self, request: Request) -> Response:
        """
        summary: List sessions (conversations), most recently active first
        description: Filters - since, until, user, project; cursor and limit as for traces.
        responses:
          200: {description: "{data: [session], next_cursor}"}
        """
        params = request.query_params
        where = group_filter(params, now_us())
        limit, cursor = page_size(params), params.get("cursor") or None
        data, next_cursor = await run_in_threadpool(self.store.list_sessions, limit, cursor, where)
        return json_response({"data": data, "next_cursor": next_cursor})

    async def get_session(self, request: Request) -> Response:
        """
        summary: One session - its totals and its traces in the order they started
        responses:
          200: {description: The session with traces}
          404: {description: No such session}
        """
        session_id = request.path_params["session_id"]
        project = request.query_params.get("project") or None
        session = await run_in_threadpool(self.store.get_session, session_id, project)
        if session is None:
            raise NotFound(f"No session with id {session_id!r}", param="session_id")
        return json_response(session)

    async def list_users(self, request: Request) -> Response:
        """
        summary: List end users with their trace count, tokens and cost
        description: Filters - since, until, project; cursor and limit as for traces.
        responses:
          200: {description: "{data: [user], next_cursor}"}
        """
        params = request.query_params
        where = group_filter(params, now_us())
        limit, cursor = page_size(params), params.get("cursor") or None
        data, next_cursor = await run_in_threadpool(self.store.list_users, limit, cursor, where)
        return json_response({"data": data, "next_cursor": next_cursor})

    async def get_user(self, request: Request) -> Response:
        """
        summary: One user's totals - traces, sessions, tokens, cost, first and last seen
        responses:
          200: {description: The user}
          404: {description: No traces of this user}
        """
        user_id = request.path_params["user_id"]
        project = request.query_params.get("project") or None
        user = await run_in_threadpool(self.store.get_user, user_id, project)
        if user is None:
            raise NotFound(f"No traces of user {user_id!r}", param="user_id")
        return json_response(user)

    async def delete_user_data(self, request: Request) -> Response:
        """
        summary: Delete every trace, span and score of one user (GDPR erasure)
        responses:
          200: {description: "{user_id, deleted: {traces, spans, scores}}"}
        """
        user_id = request.path_params["user_id"]
        project = request.query_params.get("project") or None
        deleted = await run_in_threadpool(self.store.delete_user_data, user_id, project)
        return json_response({"user_id": user_id, "deleted": deleted})

    async def list_scores(self, request: Request) -> Response:
        """
        summary: List scores, newest first, of one trace and/or one name
        responses:
          200: {description: "{data: [score]}"}
        """
        params = request.query_params
        limit = page_size(params)
        trace_id, name = params.get("trace_id") or None, params.get("name") or None
        data = await run_in_threadpool(self.store.list_scores, trace_id, name, limit)
        return json_response({"data": data})

    async def create_score(self, request: Request) -> Response:
        """
        summary: Add a score (feedback) to a trace or one of its spans
        description: >
          Body - trace_id, name, value (number, true/false or a category string), and
          optionally span_id, comment, source (user, human, judge, code, api), author, id
          (to replace an earlier score). The trace need not be stored yet - feedback may
          arrive before the trace is written.
        responses:
          201: {description: The stored score}
          400: {description: A missing or invalid field, named in error.param}
        """
        score = score_from_body(await _json_body(request))
        await run_in_threadpool(self.store.write_scores, [score])
        return json_response(score_row_to_api(score_to_row(score)), status=201)


def score_from_body(body: Any) -> Score:
    """A Score from a JSON body; InvalidRequest names the field that is wrong."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object")
    trace_id, name, value = body.get("trace_id"), body.get("name"), body.get("value")
    if not isinstance(trace_id, str) or not trace_id:
        raise InvalidRequest("`trace_id` is required and must be a string", param="trace_id")
    if not isinstance(name, str) or not name.strip():
        raise InvalidRequest("`name` is required and must be a non-empty string", param="name")
    if not isinstance(value, int | float | str) or (isinstance(value, str) and not value):
        raise InvalidRequest(
            "`value` must be a number, true or false, or a non-empty category string",
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
    return value or None


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
