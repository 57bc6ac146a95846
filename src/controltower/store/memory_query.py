"""The in-memory store's filters, pages and group totals: the SQL store's rules in Python."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import orjson

from controltower.store.cursor import decode_cursor, encode_cursor
from controltower.store.previews import list_preview
from controltower.store.serialize import Row, us_to_iso
from controltower.tracing.query import GroupFilter, TraceFilter

_SUMMED = ("input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens", "total_tokens")


def trace_matcher(where: TraceFilter) -> Callable[[Row], bool]:
    """A predicate over decoded `traces` rows that matches like the SQL filter."""
    equal = {
        "name": where.name,
        "user_id": where.user_id,
        "session_id": where.session_id,
        "model": where.model,
        "status": where.status,
    }
    equal = {key: value for key, value in equal.items() if value is not None}
    group = group_matcher(GroupFilter(where.project, where.since_us, where.until_us))
    text = where.text.lower() if where.text else None

    def match(row: Row) -> bool:
        if not group(row) or any(row[key] != value for key, value in equal.items()):
            return False
        if where.min_cost is not None and (row["cost"] is None or row["cost"] < where.min_cost):
            return False
        if where.min_latency_ms is not None and (
            row["latency_us"] is None or row["latency_us"] < where.min_latency_ms * 1000
        ):
            return False
        if any(tag not in (row["tags"] or []) for tag in where.tags):
            return False
        meta = row["meta"] or {}
        for key, value in where.metadata:
            if meta.get(key) is None or (value is not None and _text(meta[key]) != value):
                return False
        return text is None or text in _dump(row["input"]) or text in _dump(row["output"])

    return match


def group_matcher(where: GroupFilter) -> Callable[[Row], bool]:
    """A predicate over `traces` rows for the sessions and users lists."""

    def match(row: Row) -> bool:
        return (
            (where.project is None or row["project"] == where.project)
            and (where.since_us is None or row["start_us"] >= where.since_us)
            and (where.until_us is None or row["start_us"] < where.until_us)
            and (where.user_id is None or row["user_id"] == where.user_id)
        )

    return match


def page(rows: list[Row], limit: int, cursor: str | None) -> tuple[list[Row], str | None]:
    """Newest first from the cursor on, payloads cut to list previews (as the SQL store's
    list reads them), and the next page's cursor."""
    if cursor is not None:
        after = decode_cursor(cursor)
        rows = [row for row in rows if (row["start_us"], row["id"]) < after]
    rows.sort(key=lambda row: (row["start_us"], row["id"]), reverse=True)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1]["start_us"], rows[-1]["id"])
    shown = [
        {**row, "input": list_preview(row["input"]), "output": list_preview(row["output"])}
        for row in rows
    ]
    return shown, next_cursor


def group_page(
    key: str, rows: list[Row], limit: int, cursor: str | None
) -> tuple[list[Row], str | None]:
    """One page of group summaries, most recently active first."""
    by_group: dict[str, list[Row]] = {}
    for row in rows:
        by_group.setdefault(row[key], []).append(row)
    order = sorted(
        ((max(r["start_us"] for r in members), group) for group, members in by_group.items()),
        reverse=True,
    )
    if cursor is not None:
        after = decode_cursor(cursor)
        order = [item for item in order if item < after]
    next_cursor = encode_cursor(*order[limit - 1]) if len(order) > limit else None
    return [summarise(key, group, by_group[group]) for _, group in order[:limit]], next_cursor


def summarise(key: str, group: str, rows: list[Row]) -> Row:
    """A group's summary in API form (as store/groups.py builds it from SQL)."""
    summary: Row = {
        "id": group,
        "trace_count": len(rows),
        "start_time": us_to_iso(min(r["start_us"] for r in rows)),
        "end_time": us_to_iso(max(r["end_us"] or r["start_us"] for r in rows)),
        "last_time": us_to_iso(max(r["start_us"] for r in rows)),
        "usage": {name: total(r[name] for r in rows) for name in _SUMMED},
        "cost": total(r["cost"] for r in rows),
    }
    if key == "session_id":
        users = [r["user_id"] for r in rows if r["user_id"] is not None]
        summary["user_id"] = max(users) if users else None
    else:
        summary["session_count"] = len({r["session_id"] for r in rows if r["session_id"]})
    return summary


def total(values: Iterable[Any]) -> Any:
    """The sum of the values that are not None, or None when all are (like SQL's SUM)."""
    present = [value for value in values if value is not None]
    return sum(present) if present else None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _dump(value: Any) -> str:
    return "" if value is None else orjson.dumps(value).decode().lower()
