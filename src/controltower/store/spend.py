"""The spend ledger in SQL: entries written with their traces, reports summed by the database."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from controltower.domain.trace import TraceRecord
from controltower.store.bulk import BulkInsert
from controltower.store.schema import store_tables
from controltower.store.serialize import Row
from controltower.tracing.spend import SpendQuery, spend_column, spend_report

SPEND_JSON_COLUMNS = ("tags",)


def spend_rows(records: Sequence[TraceRecord]) -> list[Row]:
    """The spend entries of the gateway calls among these records (priced: after the
    trace writer ran its enrichment). The call is each record's first span."""
    rows: list[Row] = []
    for record in records:
        billing = record.billing
        if billing is None or not record.spans:
            continue
        call, trace = record.spans[0], record.trace
        cached = billing.source == "cache"
        prompt = None
        if call.prompt_name is not None:
            prompt = f"{call.prompt_name}#{call.prompt_version}"
        rows.append(
            {
                "request_id": f"{call.trace_id}:{call.id}",
                "trace_id": call.trace_id,
                "at_us": call.end_us or call.start_us,
                "project": trace.project,
                "key_id": billing.key_id,
                "user_id": trace.user_id,
                "model": billing.alias,
                "deployment": call.deployment,
                "prompt": prompt,
                "tags": list(trace.tags),
                "status": call.status,
                "source": billing.source,
                "input_tokens": call.usage.input_tokens,
                "output_tokens": call.usage.output_tokens,
                "cost": 0.0 if cached else call.cost,
                "reserved": billing.reserved,
                "saved": billing.saved,
                "saved_tokens": billing.saved_tokens,
            }
        )
    return rows


class SqlSpend:
    """Writes spend entries in the trace writer's transaction; sums them for reports."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._table = store_tables()["spend"]
        self._insert = BulkInsert(self._table, SPEND_JSON_COLUMNS, engine.dialect.name)

    def write(self, conn: Connection, records: Sequence[TraceRecord]) -> None:
        """Add the entries of these records (an entry already stored is skipped)."""
        rows = spend_rows(records)
        if rows:
            self._insert.run(conn, rows)

    def report(self, query: SpendQuery) -> dict[str, Any]:
        """The report of one query (see `controltower.tracing.spend`)."""
        s = self._table
        bucket = (s.c.at_us - query.offset_us) // query.step_us * query.step_us + query.offset_us
        column = s.c[spend_column(query.by)]
        is_error = sa.case((s.c.status == "error", 1), else_=0)
        is_hit = sa.case((s.c.source == "cache", 1), else_=0)
        select = sa.select(
            bucket.label("bucket"),
            column,
            sa.func.count(),
            sa.func.sum(is_error),
            sa.func.sum(s.c.input_tokens),
            sa.func.sum(s.c.output_tokens),
            sa.func.sum(s.c.cost),
            sa.func.sum(is_hit),
            sa.func.sum(s.c.saved),
            sa.func.sum(s.c.reserved),
        ).where(s.c.at_us >= query.since_us)
        if query.until_us is not None:
            select = select.where(s.c.at_us < query.until_us)
        if query.project is not None:
            select = select.where(s.c.project == query.project)
        select = select.group_by(sa.literal_column("bucket"), column)
        with self._engine.connect() as conn:
            rows = conn.execute(select).all()
        return spend_report(query, rows)

    def forget_user(self, conn: Connection, user_id: str, project: str | None) -> int:
        """Take a user's id off their spend entries (the amounts stay: they were billed)."""
        s = self._table
        update = sa.update(s).where(s.c.user_id == user_id).values(user_id=None)
        if project is not None:
            update = update.where(s.c.project == project)
        return conn.execute(update).rowcount or 0
