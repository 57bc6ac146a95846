"""Filters, sessions, users, scores and deletion answer alike on every store."""

from __future__ import annotations

import pytest

from controltower.domain import Score, TraceRecord
from controltower.errors import InvalidRequest
from controltower.tracing import GroupFilter, TraceFilter

from .conftest import TraceStore
from .records import T0, make_record


def varied(n: int) -> TraceRecord:
    """Trace n: users u0/u1, sessions by threes, costs and latencies growing with n."""
    record = make_record(n, output=f"answer number {n}")
    trace = record.trace
    trace.name = "chat" if n % 2 else "search"
    trace.user_id = f"u{n % 2}"
    trace.session_id = f"s{n // 3}"
    trace.tags = ["even"] if n % 2 == 0 else ["odd", "beta"]
    trace.metadata = {"feature": "x" if n < 5 else "y", "n": n}
    trace.status = "error" if n == 7 else "ok"
    trace.end_us = trace.start_us + 1_000 * (n + 1)
    record.spans[0].model = "gpt-4o" if n % 3 == 0 else "gpt-4o-mini"
    record.spans[0].cost = 0.01 * n
    record.roll_up()
    return record


@pytest.fixture
def filled(store: TraceStore) -> TraceStore:
    store.write([varied(n) for n in range(10)])
    return store


def ids(store: TraceStore, **where: object) -> list[int]:
    page, _ = store.list_traces(limit=100, where=TraceFilter(**where))  # type: ignore[arg-type]
    return [int(trace["id"], 16) for trace in page]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"name": "chat"}, [9, 7, 5, 3, 1]),
        ({"user_id": "u0"}, [8, 6, 4, 2, 0]),
        ({"session_id": "s1"}, [5, 4, 3]),
        ({"model": "gpt-4o"}, [9, 6, 3, 0]),
        ({"status": "error"}, [7]),
        ({"tags": ("odd", "beta")}, [9, 7, 5, 3, 1]),
        ({"tags": ("odd", "even")}, []),
        ({"metadata": (("feature", "y"),)}, [9, 8, 7, 6, 5]),
        ({"metadata": (("feature", None),)}, list(range(9, -1, -1))),
        ({"metadata": (("missing", None),)}, []),
        ({"min_cost": 0.075}, [9, 8]),
        ({"min_latency_ms": 8.5}, [9, 8]),
        ({"text": "NUMBER 4"}, [4]),
        ({"text": "100%"}, []),
        ({"since_us": T0 + 3_000, "until_us": T0 + 6_000}, [5, 4, 3]),
        ({"user_id": "u1", "min_cost": 0.05}, [9, 7, 5]),
    ],
)
def test_trace_filters(filled: TraceStore, where: dict[str, object], expected: list[int]) -> None:
    assert ids(filled, **where) == expected


def test_filtered_pages_follow_the_cursor(filled: TraceStore) -> None:
    where = TraceFilter(user_id="u0")
    page, cursor = filled.list_traces(limit=2, where=where)
    seen = [t["id"] for t in page]
    while cursor is not None:
        page, cursor = filled.list_traces(limit=2, cursor=cursor, where=where)
        seen += [t["id"] for t in page]
    assert [int(i, 16) for i in seen] == [8, 6, 4, 2, 0]


def test_sessions(filled: TraceStore) -> None:
    page, cursor = filled.list_sessions(limit=2)
    assert [s["id"] for s in page] == ["s3", "s2"] and cursor is not None
    rest, end = filled.list_sessions(limit=10, cursor=cursor)
    assert [s["id"] for s in rest] == ["s1", "s0"] and end is None
    s1 = filled.get_session("s1")
    assert s1 is not None
    assert s1["trace_count"] == 3 and [int(t["id"], 16) for t in s1["traces"]] == [3, 4, 5]
    assert s1["usage"]["input_tokens"] == 30
    assert s1["cost"] == pytest.approx(0.12)
    assert filled.get_session("nope") is None
    of_u0, _ = filled.list_sessions(where=GroupFilter(user_id="u0"))
    assert {s["id"] for s in of_u0} == {"s0", "s1", "s2"}


def test_users(filled: TraceStore) -> None:
    page, _ = filled.list_users()
    assert [u["id"] for u in page] == ["u1", "u0"]
    u1 = filled.get_user("u1")
    assert u1 is not None
    assert u1["trace_count"] == 5 and u1["session_count"] == 4
    assert u1["usage"]["total_tokens"] == 75
    assert u1["cost"] == pytest.approx(0.25)
    assert filled.get_user("nobody") is None


def test_scores_on_a_trace(filled: TraceStore) -> None:
    trace_id = f"{3:032x}"
    filled.write_scores(
        [
            Score("sc1", trace_id, "thumbs", True, T0, source="user", comment="great"),
            Score("sc2", trace_id, "accuracy", 0.75, T0 + 1, source="judge"),
            Score("sc3", trace_id, "topic", "billing", T0 + 2, source="human", author="ann"),
        ]
    )
    filled.write_scores([Score("sc2", trace_id, "accuracy", 0.5, T0 + 3, source="judge")])
    trace = filled.get_trace(trace_id)
    assert trace is not None
    scores = {s["name"]: s for s in trace["scores"]}
    assert scores["thumbs"]["value"] is True and scores["thumbs"]["data_type"] == "boolean"
    assert scores["accuracy"]["value"] == 0.5 and scores["accuracy"]["data_type"] == "numeric"
    assert scores["topic"]["value"] == "billing" and scores["topic"]["author"] == "ann"
    assert [s["id"] for s in filled.list_scores(name="thumbs")] == ["sc1"]


def test_scores_of_several_traces_in_one_read(filled: TraceStore) -> None:
    first, second = f"{1:032x}", f"{2:032x}"
    filled.write_scores(
        [Score(f"s{n}", first, "n", float(n), T0 + n) for n in range(4)]
        + [Score("t", second, "thumbs", True, T0)]
    )
    found = filled.scores_of_traces([first, second, f"{3:032x}"], per_trace=2)
    assert [s["value"] for s in found[first]] == [3.0, 2.0]  # newest first, at most 2
    assert [s["value"] for s in found[second]] == [True]
    assert found[f"{3:032x}"] == []


def test_delete_user_data_counts_what_went(filled: TraceStore) -> None:
    filled.write_scores([Score("sc", f"{2:032x}", "thumbs", False, T0)])
    deleted = filled.delete_user_data("u0")
    assert deleted == {"traces": 5, "spans": 10, "scores": 1, "spend": 0}
    assert ids(filled, user_id="u0") == []
    assert filled.get_user("u0") is None and len(ids(filled)) == 5
    assert filled.delete_user_data("u0") == {"traces": 0, "spans": 0, "scores": 0, "spend": 0}


def test_delete_before_keeps_newer_traces(filled: TraceStore) -> None:
    assert filled.delete_before(T0 + 4_000)["traces"] == 4
    assert ids(filled) == [9, 8, 7, 6, 5, 4]
    assert filled.delete_before(T0 + 9_000, project="other")["traces"] == 0


def test_an_empty_metadata_key_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="metadata"):
        TraceFilter(metadata=(("", None),))
