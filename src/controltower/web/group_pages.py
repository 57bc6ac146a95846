"""Sessions (`/sessions`, `/sessions/{id}`) and users (`/users`, `/users/{id}`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from controltower.domain import now_us
from controltower.errors import InvalidRequest
from controltower.tracing import GroupFilter, ObservabilityStore, TraceFilter
from controltower.tracing.params import GROUP_FILTER_PARAMS, group_filter, page_size
from controltower.web.transcript import reply_turn, user_turn
from controltower.web.views import Renderer, guarded, read

# a session page shows this many turns; the trace list has them all
MAX_TURNS = 500
USER_RECENT_TRACES = 25
USER_RECENT_SESSIONS = 10


def group_routes(store: ObservabilityStore, renderer: Renderer) -> list[BaseRoute]:
    """The routes of the session and user pages."""

    async def session_list(request: Request) -> Response:
        return await _group_list(request, renderer, store.list_sessions, "sessions")

    async def user_list(request: Request) -> Response:
        return await _group_list(request, renderer, store.list_users, "users")

    async def session_page(request: Request) -> Response:
        session_id = request.path_params["session_id"]
        session = await read(store.get_session, session_id)
        if session is None:
            return renderer.not_found(request, f"There is no session with id {session_id!r}.")
        traces = session.pop("traces", None) or []
        turns = [_turn(trace) for trace in traces[:MAX_TURNS]]
        return renderer.page(
            request,
            "session.html",
            section="sessions",
            session=session,
            turns=turns,
            trace_total=len(traces),
        )

    async def user_page(request: Request) -> Response:
        user_id = request.path_params["user_id"]
        found = await read(_user_view, store, user_id)
        if found is None:
            return renderer.not_found(request, f"There is no user with id {user_id!r}.")
        return renderer.page(request, "user.html", section="users", **found)

    return [
        Route("/sessions", guarded(renderer, session_list), include_in_schema=False),
        Route(
            "/sessions/{session_id:path}", guarded(renderer, session_page), include_in_schema=False
        ),
        Route("/users", guarded(renderer, user_list), include_in_schema=False),
        Route("/users/{user_id:path}", guarded(renderer, user_page), include_in_schema=False),
    ]


Lister = Callable[..., tuple[list[dict[str, Any]], str | None]]


async def _group_list(
    request: Request, renderer: Renderer, lister: Lister, section: str
) -> Response:
    params = dict(request.query_params)
    context: dict[str, Any] = {"section": section, "params": params, "error": None}
    context["active"] = {
        name: params[name] for name in GROUP_FILTER_PARAMS if params.get(name, "").strip()
    }
    try:
        where = group_filter(params, now_us())
        rows, next_cursor = await read(
            lister, limit=page_size(params), cursor=params.get("cursor") or None, where=where
        )
    except InvalidRequest as exc:
        context.update(rows=[], next_cursor=None, error=exc.message)
        return renderer.page(request, f"{section}.html", 400, **context)
    context.update(rows=rows, next_cursor=next_cursor)
    return renderer.page(request, f"{section}.html", **context)


def _turn(trace: dict[str, Any]) -> dict[str, Any]:
    return {"trace": trace, "user": user_turn(trace["input"]), "reply": reply_turn(trace["output"])}


def _user_view(store: ObservabilityStore, user_id: str) -> dict[str, Any] | None:
    user = store.get_user(user_id)
    if user is None:
        return None
    traces, more = store.list_traces(limit=USER_RECENT_TRACES, where=TraceFilter(user_id=user_id))
    sessions, more_sessions = store.list_sessions(
        limit=USER_RECENT_SESSIONS, where=GroupFilter(user_id=user_id)
    )
    return {
        "user": user,
        "traces": traces,
        "more_traces": more is not None,
        "sessions": sessions,
        "more_sessions": more_sessions is not None,
    }
