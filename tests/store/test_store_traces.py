"""Write, list and get traces on every store: the fake, SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import pytest

from controltower.domain import Span, Trace, TraceRecord
from controltower.errors import InvalidRequest
from controltower.store import InMemoryStore, SqlTraceStore
from controltower.tracing import TraceFilter

from .records import make_record

TraceStore = InMemoryStore | SqlTraceStore


def test_round_trip(store: TraceStore) -> None:
    store.write([make_record(1)])
    trace = store.get_trace(f"{1:032x}")
    assert trace is not None
    assert trace["start_time"] == "2023-11-14T22:13:20.001000Z"
    assert trace["end_time"] == "2023-11-14T22:13:20.003500Z"
    assert trace["latency_ms"] == 2.5
    assert trace["usage"] == {
        "input_tokens": 10,
        "output_tokens": 5,
        "cached_tokens": 2,
        "reasoning_tokens": 1,
        "total_tokens": 15,
    }
    assert trace["cost"] == pytest.approx(0.0015)
    assert trace["metadata"] == {"k": "v", "n": 1}
    assert trace["tags"] == ["a", "b"]
    assert trace["input"] == {"messages": [{"role": "user", "content": "hi"}]}
    assert [span["name"] for span in trace["spans"]] == ["root", "chat"]
    chat = trace["spans"][1]
    assert chat["parent_id"] == trace["spans"][0]["id"]
    assert chat["ttft_ms"] == 0.4
    assert chat["latency_ms"] == 2.0
    assert chat["usage"] == {
        "input_tokens": 10,
        "output_tokens": 5,
        "cached_tokens": 2,
        "reasoning_tokens": 1,
    }
    assert chat["parameters"] == {"temperature": 0.2}
    assert chat["input"] == [{"role": "user", "content": "hi"}]
    assert (chat["prompt_name"], chat["prompt_version"]) == ("greet", 3)
    assert chat["attributes"] == {"gen_ai.operation.name": "chat"}


def test_list_has_the_same_form_without_spans(store: TraceStore) -> None:
    store.write([make_record(1)])
    page, cursor = store.list_traces()
    full = store.get_trace(f"{1:032x}")
    assert full is not None
    del full["spans"], full["scores"]
    assert page == [full]
    assert cursor is None


def test_all_stores_answer_alike(store: TraceStore) -> None:
    fake = InMemoryStore()
    records = [make_record(n, output=o) for n, o in enumerate([None, "s", [1, 2], {"a": (1,)}])]
    for target in (store, fake):
        target.write(records)
    assert store.list_traces() == fake.list_traces()
    assert store.get_trace(f"{3:032x}") == fake.get_trace(f"{3:032x}")


def test_open_trace_and_json_values(store: TraceStore) -> None:
    trace = Trace(id="f" * 32, name="open", start_us=5, output=[1, "two", {"3": None}])
    store.write([TraceRecord(trace=trace, spans=[])])
    got = store.get_trace("f" * 32)
    assert got is not None
    assert (got["end_time"], got["latency_ms"], got["cost"]) == (None, None, None)
    assert got["start_time"] == "1970-01-01T00:00:00.000005Z"
    assert got["output"] == [1, "two", {"3": None}]
    assert got["usage"]["total_tokens"] is None
    assert got["spans"] == []


def test_unknown_trace_is_none(store: TraceStore) -> None:
    assert store.get_trace("0" * 32) is None


def test_pagination_over_three_pages(store: TraceStore) -> None:
    # Pairs share a start time so the id breaks ties across page boundaries.
    records = [make_record(n, start_us=1_000 + n // 2) for n in range(7)]
    store.write(records[:4])
    store.write(records[4:])
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page, cursor = store.list_traces(limit=3, cursor=cursor)
        seen.extend(trace["id"] for trace in page)
        pages += 1
        if cursor is None:
            break
    assert pages == 3
    expected = sorted(records, key=lambda r: (r.trace.start_us, r.trace.id), reverse=True)
    assert seen == [r.trace.id for r in expected]


def test_exact_page_has_no_next_cursor(store: TraceStore) -> None:
    store.write([make_record(n) for n in range(3)])
    page, cursor = store.list_traces(limit=3)
    assert len(page) == 3
    assert cursor is None


def test_filter_by_project(store: TraceStore) -> None:
    store.write([make_record(n, project="a" if n % 2 else "b") for n in range(6)])
    page, cursor = store.list_traces(limit=2, where=TraceFilter(project="a"))
    assert [t["project"] for t in page] == ["a", "a"]
    rest, end = store.list_traces(limit=2, where=TraceFilter(project="a"), cursor=cursor)
    assert [t["name"] for t in page + rest] == ["trace-5", "trace-3", "trace-1"]
    assert end is None


def test_duplicate_trace_in_later_batch(store: TraceStore) -> None:
    store.write([make_record(1)])
    again = make_record(1)
    again.trace.name = "replayed"
    store.write([again, make_record(2)])
    page, _ = store.list_traces()
    assert sorted(t["name"] for t in page) == ["trace-1", "trace-2"]
    trace = store.get_trace(f"{1:032x}")
    assert trace is not None
    assert len(trace["spans"]) == 2


def test_duplicate_inside_one_batch(store: TraceStore) -> None:
    store.write([make_record(1), make_record(1)])
    assert len(store.list_traces()[0]) == 1


def test_empty_batch(store: TraceStore) -> None:
    store.write([])
    assert store.list_traces() == ([], None)


@pytest.mark.parametrize("cursor", ["%%%", "bm90IGpzb24", "WzEsMiwzXQ", "WyJ4IiwiYSJd", "é"])
def test_invalid_cursor(store: TraceStore, cursor: str) -> None:
    with pytest.raises(InvalidRequest, match="cursor is not valid") as info:
        store.list_traces(cursor=cursor)
    assert info.value.param == "cursor"


@pytest.mark.parametrize("limit", [0, -1, 1001])
def test_invalid_limit(store: TraceStore, limit: int) -> None:
    with pytest.raises(InvalidRequest) as info:
        store.list_traces(limit=limit)
    assert info.value.param == "limit"


def test_ping(store: TraceStore) -> None:
    store.ping()


def test_concurrent_writes(store: TraceStore) -> None:
    def write(base: int) -> None:
        for n in range(base, base + 5):
            store.write([make_record(n)])

    threads = [threading.Thread(target=write, args=(base,)) for base in (0, 100, 200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    page, _ = store.list_traces(limit=100)
    assert len(page) == 15


def test_span_without_end() -> None:
    store = InMemoryStore()
    span = Span(id="1" * 16, trace_id="2" * 32, name="s", kind="tool", start_us=1)
    store.write([TraceRecord(trace=Trace(id="2" * 32, name="t", start_us=1), spans=[span])])
    trace = store.get_trace("2" * 32)
    assert trace is not None
    assert trace["spans"][0]["end_time"] is None
    assert trace["spans"][0]["latency_ms"] is None


def test_row_dicts_follow_the_column_order_the_bulk_insert_binds() -> None:
    from controltower.store.schema import build_metadata
    from controltower.store.serialize import record_to_rows
    from tests.store.records import make_record

    trace_row, span_rows = record_to_rows(make_record(1))
    tables = build_metadata().tables
    assert list(trace_row) == [c.key for c in tables["traces"].c]
    assert list(span_rows[0]) == [c.key for c in tables["spans"].c]
