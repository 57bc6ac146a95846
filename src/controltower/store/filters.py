"""Trace filters as SQL conditions, for SQLite and PostgreSQL alike."""

from __future__ import annotations

from itertools import count
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement, TextClause

from controltower.tracing.query import GroupFilter, TraceFilter

Condition = ColumnElement[bool] | TextClause


def trace_conditions(t: sa.Table, where: TraceFilter, dialect: str) -> list[Condition]:
    """The WHERE conditions that select the traces a filter matches."""
    conds: list[Condition] = _group_conditions(t, where.project, where.since_us, where.until_us)
    for column, value in (
        (t.c.name, where.name),
        (t.c.user_id, where.user_id),
        (t.c.session_id, where.session_id),
        (t.c.model, where.model),
        (t.c.status, where.status),
    ):
        if value is not None:
            conds.append(column == value)
    if where.min_cost is not None:
        conds.append(t.c.cost >= where.min_cost)
    if where.min_latency_ms is not None:
        conds.append(t.c.latency_us >= int(where.min_latency_ms * 1000))
    names = count()
    for tag in where.tags:
        conds.append(_has_tag(tag, f"tag_{next(names)}", dialect))
    for key, value in where.metadata:
        conds.append(_has_metadata(key, value, f"meta_{next(names)}", dialect))
    if where.text:
        conds.append(_mentions(t, where.text, dialect))
    return conds


def group_conditions(t: sa.Table, where: GroupFilter) -> list[Condition]:
    """The WHERE conditions on the traces whose sessions or users are listed."""
    conds = _group_conditions(t, where.project, where.since_us, where.until_us)
    if where.user_id is not None:
        conds.append(t.c.user_id == where.user_id)
    return conds


def _group_conditions(
    t: sa.Table, project: str | None, since_us: int | None, until_us: int | None
) -> list[Condition]:
    conds: list[Condition] = []
    if project is not None:
        conds.append(t.c.project == project)
    if since_us is not None:
        conds.append(t.c.start_us >= since_us)
    if until_us is not None:
        conds.append(t.c.start_us < until_us)
    return conds


def _has_tag(tag: str, name: str, dialect: str) -> Condition:
    if dialect == "postgresql":
        clause = f"traces.tags @> CAST(:{name} AS jsonb)"
        return sa.text(clause).bindparams(sa.bindparam(name, orjson.dumps([tag]).decode()))
    clause = f"EXISTS (SELECT 1 FROM json_each(traces.tags) WHERE json_each.value = :{name})"
    return sa.text(clause).bindparams(sa.bindparam(name, tag))


def _has_metadata(key: str, value: str | None, name: str, dialect: str) -> Condition:
    params: dict[str, Any] = {}
    if dialect == "postgresql":
        lookup = f"(traces.metadata ->> :{name}_key)"
        params[f"{name}_key"] = key
    else:
        # a quoted JSON path reads keys with dots or spaces literally
        lookup = f"CAST(json_extract(traces.metadata, :{name}_key) AS TEXT)"
        params[f"{name}_key"] = '$."' + key.replace('"', '\\"') + '"'
    if value is None:
        clause = f"{lookup} IS NOT NULL"
    else:
        clause = f"{lookup} = :{name}_value"
        params[f"{name}_value"] = value
    return sa.text(clause).bindparams(**params)


def _mentions(t: sa.Table, text: str, dialect: str) -> Condition:
    # JSON is stored as text on SQLite (LIKE ignores ASCII case); PostgreSQL casts JSONB
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    as_text = [sa.cast(t.c.input, sa.Text), sa.cast(t.c.output, sa.Text)]
    if dialect == "postgresql":
        return sa.or_(*(column.ilike(pattern, escape="\\") for column in as_text))
    return sa.or_(*(column.like(pattern, escape="\\") for column in as_text))
