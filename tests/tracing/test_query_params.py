"""Query-string filters of the UI (and the query API) parsed into TraceFilter."""

from __future__ import annotations

import pytest

from controltower.errors import InvalidRequest
from controltower.tracing import GroupFilter, TraceFilter
from controltower.tracing.params import group_filter, page_size, parse_time, trace_filter

NOW = 1_700_000_000_000_000  # 2023-11-14T22:13:20Z
HOUR = 3_600_000_000


def test_empty_query_filters_nothing() -> None:
    assert trace_filter({}, NOW) == TraceFilter()
    assert trace_filter({"name": "  ", "tags": " , "}, NOW) == TraceFilter()
    assert group_filter({}, NOW) == GroupFilter()


def test_every_trace_filter() -> None:
    where = trace_filter(
        {
            "since": "24h",
            "until": "2023-11-14T22:00:00Z",
            "name": "chat",
            "user": "alice",
            "session": "s1",
            "model": "gpt-4o",
            "status": "error",
            "tags": "prod, beta",
            "metadata": "tenant=acme, plan",
            "min_cost": "$0.5",
            "min_latency": "2s",
            "q": "paris",
            "project": "p1",
        },
        NOW,
    )
    assert where == TraceFilter(
        project="p1",
        since_us=NOW - 24 * HOUR,
        until_us=NOW - 13 * 60_000_000 - 20_000_000,
        name="chat",
        user_id="alice",
        session_id="s1",
        model="gpt-4o",
        status="error",
        tags=("prod", "beta"),
        metadata=(("tenant", "acme"), ("plan", None)),
        min_cost=0.5,
        min_latency_ms=2000.0,
        text="paris",
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", NOW - HOUR // 2),
        ("1.5h", NOW - 3 * HOUR // 2),
        ("7d", NOW - 7 * 24 * HOUR),
        ("2w", NOW - 14 * 24 * HOUR),
        ("now", NOW),
        ("2023-11-14", NOW - 22 * HOUR - 13 * 60_000_000 - 20_000_000),
        ("2023-11-14T23:13:20+01:00", NOW),
        ("2023-11-14 22:13:20.000001", NOW + 1),
    ],
)
def test_times_absolute_and_relative(text: str, expected: int) -> None:
    assert parse_time(text, "since", NOW) == expected


@pytest.mark.parametrize(
    ("params", "param", "words"),
    [
        ({"since": "yesterday"}, "since", "ISO date"),
        ({"until": "5 parsecs"}, "until", "24h"),
        ({"status": "failed"}, "status", "`ok` or `error`"),
        ({"min_cost": "cheap"}, "min_cost", "number"),
        ({"min_cost": "-1"}, "min_cost", "0 or more"),
        ({"min_cost": "nan"}, "min_cost", "number"),
        ({"min_latency": "fast"}, "min_latency", "500ms"),
        ({"metadata": "=x"}, "metadata", "key=value"),
    ],
)
def test_invalid_values_name_the_parameter(params: dict[str, str], param: str, words: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        trace_filter(params, NOW)
    assert caught.value.param == param
    assert words in caught.value.message


def test_latency_units_and_page_size() -> None:
    assert trace_filter({"min_latency": "250"}, NOW).min_latency_ms == 250
    assert trace_filter({"min_latency": "1m"}, NOW).min_latency_ms == 60_000
    assert page_size({}) == 50 and page_size({"limit": "200"}) == 200
    for bad in ("0", "201", "ten"):
        with pytest.raises(InvalidRequest):
            page_size({"limit": bad})


def test_group_filter() -> None:
    assert group_filter({"since": "1h", "user": "bob", "project": "p"}, NOW) == GroupFilter(
        project="p", since_us=NOW - HOUR, user_id="bob"
    )
