"""Merging the pieces of a trace that arrive in several records (SDK, OTLP, nested gateway)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from controltower.domain.trace import Span, TraceRecord
from controltower.store.serialize import Row

# owned by the root span: a piece that holds it (or an explicit trace update) sets them
_ROOT_FIELDS = ("name", "input", "output", "status")
# labels: whichever piece knows them says so
_LABEL_FIELDS = ("user_id", "session_id", "environment", "release")
_TOTALS = ("input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens", "cost")


def is_authoritative(record: TraceRecord) -> bool:
    """Whether a partial record speaks for the whole trace (holds its root, or no spans)."""
    return not record.spans or any(span.parent_id is None for span in record.spans)


def provisional_name(record: TraceRecord) -> str:
    """A name for a trace whose root has not arrived yet: its earliest span's."""
    if record.trace.name or not record.spans:
        return record.trace.name
    return min(record.spans, key=lambda span: span.start_us).name


def prepare_piece(record: TraceRecord, row: Row) -> bool:
    """Ready a partial record's trace row for merging; whether it is authoritative."""
    row["name"] = provisional_name(record)
    if not record.spans and row["status"] == "ok":
        # a trace update without spans (ct.update_trace) says nothing of the status unless
        # it marks an error: "ok" is only the model's default
        row["status"] = None
    return is_authoritative(record)


def merge_trace(stored: Mapping[str, Any] | None, incoming: Row, authoritative: bool) -> Row:
    """The `traces` row after one more piece of the trace arrived."""
    if stored is None:
        return {**incoming, "status": incoming["status"] or "ok"}
    merged = dict(stored)
    merged["start_us"] = min(stored["start_us"], incoming["start_us"])
    ends = [end for end in (stored["end_us"], incoming["end_us"]) if end is not None]
    merged["end_us"] = max(ends) if ends else None
    for key in _ROOT_FIELDS:
        value = incoming[key]
        if not _empty(value) and (authoritative or _empty(stored[key])):
            merged[key] = value
    for key in _LABEL_FIELDS:
        if not _empty(incoming[key]):
            merged[key] = incoming[key]
    if _empty(stored["model"]):
        merged["model"] = incoming["model"]
    tags = list(stored["tags"] or [])
    merged["tags"] = tags + [tag for tag in incoming["tags"] or [] if tag not in tags]
    merged["meta"] = {**(stored["meta"] or {}), **(incoming["meta"] or {})}
    return merged


def apply_totals(row: Row, totals: Mapping[str, Any] | None) -> None:
    """Set the row's latency and its token and cost totals (None when nothing counted)."""
    end = row["end_us"]
    row["latency_us"] = None if end is None else end - row["start_us"]
    for key in _TOTALS:
        row[key] = None if totals is None else totals[key]
    if row["input_tokens"] is None and row["output_tokens"] is None:
        row["total_tokens"] = None
    else:
        row["total_tokens"] = (row["input_tokens"] or 0) + (row["output_tokens"] or 0)


def sum_totals(rows: Iterable[Mapping[str, Any]]) -> Row | None:
    """Token and cost sums over counted call rows (None where no row states a value)."""
    rows = list(rows)
    if not rows:
        return None
    totals: Row = {}
    for key in _TOTALS:
        values = [row[key] for row in rows if row[key] is not None]
        totals[key] = sum(values) if values else None
    return totals


def span_totals(spans: Iterable[Span]) -> Row | None:
    """Token and cost sums over counted spans (None where no span states a value)."""
    return sum_totals(
        {
            "input_tokens": span.usage.input_tokens,
            "output_tokens": span.usage.output_tokens,
            "cached_tokens": span.usage.cached_tokens,
            "reasoning_tokens": span.usage.reasoning_tokens,
            "cost": span.cost,
        }
        for span in spans
    )


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}
