"""The span tree of the trace page: order, depth, orphans, cycles and very deep chains."""

from __future__ import annotations

from typing import Any

from controltower.store.serialize import us_to_iso
from controltower.web.tree import ROW_COLUMNS, span_tree

T0 = 1_700_000_000_000_000
COL = {name: i for i, name in enumerate(ROW_COLUMNS)}


def trace(duration_us: int = 10_000) -> dict[str, Any]:
    return {
        "id": "t" * 32,
        "name": "run",
        "start_time": us_to_iso(T0),
        "end_time": us_to_iso(T0 + duration_us),
        "status": "ok",
        "usage": {"total_tokens": 7},
        "cost": 0.5,
    }


def span(sid: str, parent: str | None, start: int, end: int | None, **extra: Any) -> dict[str, Any]:
    return {
        "id": sid,
        "parent_id": parent,
        "name": sid,
        "kind": extra.get("kind", "span"),
        "start_time": us_to_iso(T0 + start),
        "end_time": None if end is None else us_to_iso(T0 + end),
        "latency_ms": None if end is None else (end - start) / 1000,
        "status": extra.get("status", "ok"),
        "model": extra.get("model"),
        "usage": extra.get("usage", {}),
        "cost": extra.get("cost"),
    }


def column(rows: list[list[Any]], name: str) -> list[Any]:
    return [row[COL[name]] for row in rows]


def test_rows_depth_first_with_children_in_start_order() -> None:
    spans = [
        span("b", "root", 5_000, 6_000),
        span("root", None, 0, 10_000),
        span("a", "root", 1_000, 4_000, kind="generation", model="m", usage={"input_tokens": 3}),
        span("a1", "a", 2_000, 3_000, status="error"),
    ]
    tree = span_tree(trace(), spans)
    assert column(tree.rows, "id") == ["t" * 32, "root", "a", "a1", "b"]
    assert column(tree.rows, "depth") == [0, 1, 2, 3, 2]
    assert column(tree.rows, "children") == [1, 2, 1, 0, 0]
    assert column(tree.rows, "offset_ms") == [0, 0, 1, 2, 5]
    assert column(tree.rows, "duration_ms") == [10, 10, 3, 1, 1]
    assert tree.rows[2][COL["tokens"]] == 3 and tree.rows[2][COL["model"]] == "m"
    assert tree.rows[0][COL["tokens"]] == 7 and tree.rows[0][COL["kind"]] == "trace"
    assert (tree.span_count, tree.error_count, tree.duration_ms) == (4, 1, 10)


def test_orphans_cycles_and_open_spans_are_all_shown() -> None:
    spans = [
        span("orphan", "missing", 1_000, None),
        span("x", "y", 2_000, 3_000),
        span("y", "x", 2_500, 3_000),
        span("late", None, 0, 12_000),
    ]
    tree = span_tree(trace(), spans)
    assert sorted(column(tree.rows, "id")[1:]) == ["late", "orphan", "x", "y"]
    assert tree.rows[column(tree.rows, "id").index("orphan")][COL["duration_ms"]] is None
    # the span that ends after the trace's stated end widens the timeline
    assert tree.duration_ms == 12


def test_a_chain_thousands_deep_needs_no_recursion() -> None:
    spans = [span(f"s{i}", f"s{i - 1}" if i else None, i, i + 1) for i in range(5_000)]
    tree = span_tree(trace(), spans)
    assert len(tree.rows) == 5_001 and tree.rows[-1][COL["depth"]] == 5_000
