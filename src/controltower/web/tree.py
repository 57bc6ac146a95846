"""A trace's span tree as compact rows for the trace page (no inputs or outputs in them)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

# What each row holds, by position: the page's script reads rows by these indexes, which
# keeps the JSON of a trace with thousands of spans a few hundred bytes per span.
ROW_COLUMNS = (
    "id",
    "depth",
    "name",
    "kind",
    "offset_ms",
    "duration_ms",
    "status",
    "model",
    "tokens",
    "cost",
    "children",
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)

Row = list[Any]


@dataclass(slots=True)
class SpanTree:
    """The rows in display order (the trace first, then its spans depth first) and the span."""

    rows: list[Row]
    duration_ms: float
    span_count: int
    error_count: int


def iso_to_us(value: str | None) -> int | None:
    """µs since the epoch of an API time (`2024-05-01T12:00:00.000001Z`)."""
    if not value:
        return None
    return (datetime.fromisoformat(value) - _EPOCH) // _ONE_US


def span_tree(trace: Mapping[str, Any], spans: Sequence[Mapping[str, Any]]) -> SpanTree:
    """The trace's rows: each span under its parent, children in the order they started."""
    starts = {span["id"]: iso_to_us(span["start_time"]) or 0 for span in spans}
    begin = min([iso_to_us(trace["start_time"]) or 0, *starts.values()])
    ends = [iso_to_us(span["end_time"]) for span in spans]
    end = max([iso_to_us(trace["end_time"]) or begin, *(e for e in ends if e is not None)])
    children = _children(spans, starts)
    rows: list[Row] = [_trace_row(trace, begin, end, len(children.get(None, ())))]
    for span, depth in _depth_first(spans, children):
        rows.append(_span_row(span, depth, starts[span["id"]] - begin, children))
    errors = sum(1 for span in spans if span["status"] == "error")
    return SpanTree(rows, (end - begin) / 1000, len(spans), errors)


def _children(
    spans: Sequence[Mapping[str, Any]], starts: Mapping[str, int]
) -> dict[str | None, list[Mapping[str, Any]]]:
    # a span whose parent is not stored (yet) hangs from the trace, like a root span
    known = set(starts)
    children: dict[str | None, list[Mapping[str, Any]]] = {}
    for span in sorted(spans, key=lambda s: (starts[s["id"]], s["id"])):
        parent = span["parent_id"] if span["parent_id"] in known else None
        children.setdefault(parent, []).append(span)
    return children


def _depth_first(
    spans: Sequence[Mapping[str, Any]], children: Mapping[str | None, list[Mapping[str, Any]]]
) -> Iterator[tuple[Mapping[str, Any], int]]:
    # iterative, so that a chain thousands of spans deep does not hit the recursion limit;
    # spans in a parent cycle (never reached from a root) are shown at the top level
    seen: set[str] = set()
    roots = children.get(None, [])
    pending: list[tuple[Mapping[str, Any], int]] = [(span, 1) for span in reversed(roots)]
    leftovers = iter(spans)
    while True:
        while pending:
            span, depth = pending.pop()
            if span["id"] in seen:
                continue
            seen.add(span["id"])
            yield span, depth
            kids = children.get(span["id"], ())
            pending.extend((kid, depth + 1) for kid in reversed(kids))
        orphan = next((span for span in leftovers if span["id"] not in seen), None)
        if orphan is None:
            return
        pending.append((orphan, 1))


def _trace_row(trace: Mapping[str, Any], begin: int, end: int, roots: int) -> Row:
    start = iso_to_us(trace["start_time"]) or begin
    usage = trace.get("usage") or {}
    return [
        trace["id"],
        0,
        trace["name"] or "trace",
        "trace",
        (start - begin) / 1000,
        (end - start) / 1000,
        trace["status"],
        None,
        usage.get("total_tokens"),
        trace.get("cost"),
        roots,
    ]


def _span_row(
    span: Mapping[str, Any],
    depth: int,
    offset_us: int,
    children: Mapping[str | None, list[Mapping[str, Any]]],
) -> Row:
    usage = span.get("usage") or {}
    tokens = None
    if usage.get("input_tokens") is not None or usage.get("output_tokens") is not None:
        tokens = (usage.get("input_tokens") or 0) + (usage.get("output_tokens") or 0)
    return [
        span["id"],
        depth,
        span["name"] or span["kind"],
        span["kind"],
        offset_us / 1000,
        span["latency_ms"],
        span["status"],
        span.get("model"),
        tokens,
        span.get("cost"),
        len(children.get(span["id"], ())),
    ]
