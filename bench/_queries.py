"""The requests the query benchmark times, built from a dataset's manifest."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from _dataset import DAY_US

from controltower.store import SqlTraceStore
from controltower.tracing import GroupFilter, TraceFilter
from controltower.tracing.params import group_filter, page_size, trace_filter

LIST_TARGET_MS = 300.0  # issue 3: trace list and filtered queries, p95
DETAIL_TARGET_MS = 500.0  # issue 3: trace detail of a 5,000-span trace
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Query:
    """One request: what it shows, its path and parameters, and its p95 target."""

    key: str
    label: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    target_ms: float = LIST_TARGET_MS
    kind: str = "traces"  # which store calls answer it (for --explain)
    ident: str = ""  # the trace, session or user id of a detail request

    def url(self) -> str:
        """Path and query string, for the table."""
        if not self.params:
            return self.path
        query = "&".join(f"{k}={_short(v)}" for k, v in self.params.items())
        return f"{self.path}?{query}"


def _short(value: str) -> str:
    return value if len(value) <= 24 else value[:10] + "…"


def iso(us: int) -> str:
    """An API time parameter."""
    return (_EPOCH + timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%SZ")


def build(m: dict[str, Any]) -> list[Query]:
    """Every request of the benchmark, in the order they are measured."""
    return [*_trace_lists(m), *_combinations(m), *_groups(m), *_details(m), *_pages(m)]


def _trace_lists(m: dict[str, Any]) -> list[Query]:
    end = m["end_us"]
    day_ago, two_weeks_ago = iso(end - DAY_US), end - 14 * DAY_US
    q = "/api/traces"
    return [
        Query("list.first", "trace list, first page", q),
        Query("list.first200", "trace list, first page of 200", q, {"limit": "200"}),
        Query(
            "list.deep",
            f"trace list, page after trace #{m['deep_rank']:,} (cursor)",
            q,
            {"cursor": m["deep_cursor"]},
        ),
        Query("f.name", "name (34% of traces)", q, {"name": "rag-answer"}),
        Query("f.name_rare", "name (1%)", q, {"name": "export-report"}),
        Query(
            "f.user",
            f"user (typical: {m['typical_user_traces']} traces)",
            q,
            {"user": m["typical_user"]},
        ),
        Query(
            "f.user_heavy",
            f"user (heaviest: {m['heavy_user_traces']:,} traces)",
            q,
            {"user": m["heavy_user"]},
        ),
        Query("f.session", "session", q, {"session": m["session_id"]}),
        Query("f.model", "model (12%)", q, {"model": "claude-3-5-haiku"}),
        Query("f.status", "status=error (2%)", q, {"status": "error"}),
        Query("f.tag", "tags (60%)", q, {"tags": "rag"}),
        Query("f.tag_rare", "tags (1%)", q, {"tags": "vip"}),
        Query("f.meta", "metadata key=value (2%)", q, {"metadata": "tenant=tenant-007"}),
        Query("f.meta_common", "metadata key=value (20%)", q, {"metadata": "region=eu-west"}),
        Query("f.meta_key", "metadata key present (100%)", q, {"metadata": "channel"}),
        Query("f.cost", "min_cost (top 1%)", q, {"min_cost": str(m["cost_p99"])}),
        Query("f.latency", "min_latency (top 1%)", q, {"min_latency": str(m["latency_p99_ms"])}),
        Query("f.since", "time range: last 24 h", q, {"since": day_ago}),
        Query(
            "f.window",
            "time range: one day, two weeks ago",
            q,
            {"since": iso(two_weeks_ago), "until": iso(two_weeks_ago + DAY_US)},
        ),
        Query(
            "f.q_common", f"q= common word ({m['common_word']}, ~20%)", q, {"q": m["common_word"]}
        ),
        Query("f.q_rare", f"q= rare word ({m['rare_word']}, ~0.02%)", q, {"q": m["rare_word"]}),
    ]


def _combinations(m: dict[str, Any]) -> list[Query]:
    end, q = m["end_us"], "/api/traces"
    return [
        Query(
            "c.model_error",
            "model + status=error",
            q,
            {"model": "claude-3-5-haiku", "status": "error"},
        ),
        Query(
            "c.name_tag_week",
            "name + tags (1%) + last 7 days",
            q,
            {"name": "rag-answer", "tags": "vip", "since": iso(end - 7 * DAY_US)},
        ),
        Query(
            "c.user_q",
            "user (heaviest) + q= common word",
            q,
            {"user": m["heavy_user"], "q": m["common_word"]},
        ),
        Query(
            "c.meta_cost",
            "metadata (2%) + min_cost (top 1%)",
            q,
            {"metadata": "tenant=tenant-007", "min_cost": str(m["cost_p99"])},
        ),
    ]


def _groups(m: dict[str, Any]) -> list[Query]:
    end = m["end_us"]
    return [
        Query("g.sessions", "sessions, first page", "/api/sessions", kind="sessions"),
        Query(
            "g.sessions_day",
            "sessions, last 24 h",
            "/api/sessions",
            {"since": iso(end - DAY_US)},
            kind="sessions",
        ),
        Query(
            "g.sessions_user",
            "sessions of the heaviest user",
            "/api/sessions",
            {"user": m["heavy_user"]},
            kind="sessions",
        ),
        Query("g.users", "users, first page", "/api/users", kind="users"),
        Query(
            "g.users_day",
            "users, last 24 h",
            "/api/users",
            {"since": iso(end - DAY_US)},
            kind="users",
        ),
        Query(
            "g.session",
            "one session with its traces",
            f"/api/sessions/{m['session_id']}",
            kind="session",
            ident=m["session_id"],
        ),
        Query(
            "g.user",
            "one user (heaviest)",
            f"/api/users/{m['heavy_user']}",
            kind="user",
            ident=m["heavy_user"],
        ),
        Query(
            "g.user_typical",
            "one user (typical)",
            f"/api/users/{m['typical_user']}",
            kind="user",
            ident=m["typical_user"],
        ),
    ]


def _details(m: dict[str, Any]) -> list[Query]:
    big, typical = m["big_trace_id"], m["typical_trace_id"]
    spans = m["plan"]["big_spans"]
    return [
        Query(
            "d.trace",
            "trace detail (~10 spans)",
            f"/api/traces/{typical}",
            kind="trace",
            ident=typical,
        ),
        Query(
            "d.big",
            f"trace detail ({spans:,} spans)",
            f"/api/traces/{big}",
            target_ms=DETAIL_TARGET_MS,
            kind="trace",
            ident=big,
        ),
    ]


def _pages(m: dict[str, Any]) -> list[Query]:
    big = m["big_trace_id"]
    spans = m["plan"]["big_spans"]
    return [
        Query("w.traces", "page /traces", "/traces", kind="web_traces"),
        Query(
            "w.traces_filtered",
            "page /traces, model + tags",
            "/traces",
            {"model": "gpt-4o", "tags": "agent"},
            kind="web_traces",
        ),
        Query(
            "w.big",
            f"page /traces/{{id}} ({spans:,} spans)",
            f"/traces/{big}",
            target_ms=DETAIL_TARGET_MS,
            kind="web_trace",
            ident=big,
        ),
        Query("w.sessions", "page /sessions", "/sessions", kind="sessions"),
        Query(
            "w.session",
            "page /sessions/{id}",
            f"/sessions/{m['session_id']}",
            kind="session",
            ident=m["session_id"],
        ),
        Query("w.users", "page /users", "/users", kind="users"),
        Query(
            "w.user",
            "page /users/{id} (heaviest)",
            f"/users/{m['heavy_user']}",
            kind="web_user",
            ident=m["heavy_user"],
        ),
    ]


def store_call(query: Query, store: SqlTraceStore, now_us: int) -> Callable[[], Any]:
    """The store calls that answer the request (what the route or page calls)."""
    params, ident = query.params, query.ident
    limit, cursor = page_size(params), params.get("cursor") or None

    def traces() -> Any:
        return store.list_traces(limit, cursor, trace_filter(params, now_us))

    def web_traces() -> Any:
        found, _ = traces()
        return [store.list_scores(trace_id=t["id"], limit=5) for t in found]

    def web_trace() -> Any:
        return store.get_trace(ident), store.list_scores(limit=200)

    def web_user() -> Any:
        traces = store.list_traces(25, None, TraceFilter(user_id=ident))
        return (
            store.get_user(ident),
            traces,
            store.list_sessions(10, None, GroupFilter(user_id=ident)),
        )

    calls: dict[str, Callable[[], Any]] = {
        "traces": traces,
        "web_traces": web_traces,
        "web_trace": web_trace,
        "web_user": web_user,
        "trace": lambda: store.get_trace(ident),
        "sessions": lambda: store.list_sessions(limit, cursor, group_filter(params, now_us)),
        "users": lambda: store.list_users(limit, cursor, group_filter(params, now_us)),
        "session": lambda: store.get_session(ident),
        "user": lambda: store.get_user(ident),
    }
    return calls[query.kind]
