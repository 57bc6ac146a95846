"""Sessions and users: traces grouped by conversation or by end user, with their totals."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from controltower.store.cursor import check_limit, decode_cursor, encode_cursor
from controltower.store.filters import Condition
from controltower.store.serialize import Row, us_to_iso

_SUMMED = ("input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens", "total_tokens")


def group_page(
    conn: Connection,
    t: sa.Table,
    key: sa.Column[Any],
    conds: list[Condition],
    limit: int,
    cursor: str | None,
) -> tuple[list[Row], str | None]:
    """One page of groups (by `key`), most recently active first."""
    check_limit(limit)
    last = sa.func.max(t.c.start_us)
    query = (
        _summary(t, key)
        .where(key.is_not(None), *conds)
        .group_by(key)
        .order_by(last.desc(), key.desc())
        .limit(limit + 1)
    )
    if cursor is not None:
        last_us, group_id = decode_cursor(cursor)
        query = query.having(sa.tuple_(last, key) < sa.tuple_(last_us, group_id))
    rows = [dict(row._mapping) for row in conn.execute(query)]
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1]["last_us"], rows[-1]["id"])
    return [summary_to_api(row) for row in rows], next_cursor


def group_summary(
    conn: Connection, t: sa.Table, key: sa.Column[Any], value: str, project: str | None
) -> Row | None:
    """The totals of one group, or None when no trace belongs to it."""
    query = _summary(t, key).where(key == value).group_by(key)
    if project is not None:
        query = query.where(t.c.project == project)
    row = conn.execute(query).first()
    return None if row is None else summary_to_api(dict(row._mapping))


def summary_to_api(row: Row) -> Row:
    """The API form of a group's summary row."""
    usage = {key: _int(row[key]) for key in _SUMMED}
    summary: Row = {
        "id": row["id"],
        "trace_count": row["trace_count"],
        "start_time": us_to_iso(row["first_us"]),
        "end_time": us_to_iso(row["end_us"]),
        "last_time": us_to_iso(row["last_us"]),
        "usage": usage,
        "cost": row["cost"],
    }
    if "user_id" in row:
        summary["user_id"] = row["user_id"]
    if "session_count" in row:
        summary["session_count"] = row["session_count"]
    return summary


def _summary(t: sa.Table, key: sa.Column[Any]) -> sa.Select[Any]:
    columns: list[Any] = [
        key.label("id"),
        sa.func.count().label("trace_count"),
        sa.func.min(t.c.start_us).label("first_us"),
        sa.func.max(t.c.start_us).label("last_us"),
        sa.func.max(sa.func.coalesce(t.c.end_us, t.c.start_us)).label("end_us"),
        *(sa.func.sum(t.c[name]).label(name) for name in _SUMMED),
        sa.func.sum(t.c.cost).label("cost"),
    ]
    if key.name == "session_id":
        columns.append(sa.func.max(t.c.user_id).label("user_id"))
    else:
        columns.append(sa.func.count(sa.distinct(t.c.session_id)).label("session_count"))
    return sa.select(*columns)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)
