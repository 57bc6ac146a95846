"""Per-version metrics of a prompt: requests, latency, tokens, cost, errors, user scores.

A request is a generation span that names the prompt and version (the gateway records
them when it serves a `prompt:` reference, the SDK when the application sets them).
Percentiles are nearest-rank: the value at rank ceil(p * n) of the sorted latencies, which
both databases compute with the same window functions.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from controltower.prompts.metrics import MetricsWindow, ScoreMean, VersionMetrics
from controltower.store.schema import store_tables

if TYPE_CHECKING:
    from controltower.store.memory import InMemoryStore

_NUMERIC = ("numeric", "boolean")  # score types with a mean; booleans count as 1 and 0


def sql_prompt_metrics(
    engine: Engine, name: str, window: MetricsWindow | None = None
) -> dict[int, VersionMetrics]:
    """Metrics of each version of a prompt that served requests, by version number."""
    tables = store_tables()
    spans, scores = tables["spans"], tables["scores"]
    conds = _conditions(spans, name, window or MetricsWindow())
    with engine.connect() as conn:
        totals = {row.version: row for row in conn.execute(_totals_query(spans, conds))}
        latency = {row.version: row for row in conn.execute(_latency_query(spans, conds))}
        means: dict[int, dict[str, ScoreMean]] = {}
        for row in conn.execute(_scores_query(spans, scores, conds)):
            means.setdefault(row.version, {})[row.name] = ScoreMean(
                float(row.mean), int(row._mapping["count"])
            )
    return {
        version: VersionMetrics(
            version=version,
            requests=int(row.requests),
            errors=int(row.errors or 0),
            latency_p50_us=_int(latency[version].p50) if version in latency else None,
            latency_p95_us=_int(latency[version].p95) if version in latency else None,
            input_tokens=int(row.input_tokens or 0),
            output_tokens=int(row.output_tokens or 0),
            cost=None if row.cost is None else float(row.cost),
            user_scores=means.get(version, {}),
        )
        for version, row in sorted(totals.items())
    }


def _conditions(spans: sa.Table, name: str, window: MetricsWindow) -> list[Any]:
    conds: list[Any] = [
        spans.c.prompt_name == name,
        spans.c.prompt_version.is_not(None),
        spans.c.kind == "generation",
    ]
    if window.since_us is not None:
        conds.append(spans.c.start_us >= window.since_us)
    if window.until_us is not None:
        conds.append(spans.c.start_us < window.until_us)
    return conds


def _totals_query(spans: sa.Table, conds: list[Any]) -> sa.Select[Any]:
    version = spans.c.prompt_version
    failed = sa.case((spans.c.status == "error", 1), else_=0)
    return (
        sa.select(
            version.label("version"),
            sa.func.count().label("requests"),
            sa.func.sum(failed).label("errors"),
            sa.func.sum(spans.c.input_tokens).label("input_tokens"),
            sa.func.sum(spans.c.output_tokens).label("output_tokens"),
            sa.func.sum(spans.c.cost).label("cost"),
        )
        .where(*conds)
        .group_by(version)
    )


def _latency_query(spans: sa.Table, conds: list[Any]) -> sa.Select[Any]:
    version = spans.c.prompt_version
    ranked = (
        sa.select(
            version.label("version"),
            spans.c.latency_us.label("latency_us"),
            sa.func.row_number()
            .over(partition_by=version, order_by=spans.c.latency_us)
            .label("rank"),
            sa.func.count().over(partition_by=version).label("n"),
        )
        .where(*conds, spans.c.latency_us.is_not(None))
        .subquery()
    )

    def at(percent: int) -> Any:
        # ceil(n * percent / 100) in integer arithmetic, the same on both databases
        wanted = (ranked.c.n * percent + 99) // 100
        return sa.func.max(sa.case((ranked.c.rank == wanted, ranked.c.latency_us)))

    return sa.select(ranked.c.version, at(50).label("p50"), at(95).label("p95")).group_by(
        ranked.c.version
    )


def _scores_query(spans: sa.Table, scores: sa.Table, conds: list[Any]) -> sa.Select[Any]:
    served = (
        sa.select(spans.c.trace_id, spans.c.prompt_version.label("version"))
        .where(*conds)
        .distinct()
        .subquery()
    )
    return (
        sa.select(
            served.c.version,
            scores.c.name,
            sa.func.avg(scores.c.value_num).label("mean"),
            sa.func.count().label("count"),
        )
        .join(served, served.c.trace_id == scores.c.trace_id)
        .where(scores.c.source == "user", scores.c.data_type.in_(_NUMERIC))
        .group_by(served.c.version, scores.c.name)
    )


def memory_prompt_metrics(
    store: InMemoryStore, name: str, window: MetricsWindow | None = None
) -> dict[int, VersionMetrics]:
    """The same metrics over the in-memory fake of the trace store."""
    window = window or MetricsWindow()
    # the fake's rows have the tables' columns; read under its lock, as its own reads do
    with store._lock:
        spans = [row for trace in store._spans.values() for row in trace.values()]
        scores = list(store._scores.values())
    served = [row for row in spans if _counts(row, name, window)]
    return aggregate(served, scores)


def _counts(row: dict[str, Any], name: str, window: MetricsWindow) -> bool:
    if row["prompt_name"] != name or row["prompt_version"] is None:
        return False
    if row["kind"] != "generation":
        return False
    start = row["start_us"]
    if window.since_us is not None and start < window.since_us:
        return False
    return window.until_us is None or start < window.until_us


def aggregate(
    spans: Iterable[dict[str, Any]], scores: Iterable[dict[str, Any]]
) -> dict[int, VersionMetrics]:
    """Metrics from span rows of one prompt and all score rows (as the `spans`/`scores` tables)."""
    by_version: dict[int, list[dict[str, Any]]] = {}
    traces: dict[str, set[int]] = {}
    for row in spans:
        by_version.setdefault(row["prompt_version"], []).append(row)
        traces.setdefault(row["trace_id"], set()).add(row["prompt_version"])
    values: dict[int, dict[str, list[float]]] = {}
    for score in scores:
        if score["source"] != "user" or score["data_type"] not in _NUMERIC:
            continue
        for version in traces.get(score["trace_id"], ()):
            values.setdefault(version, {}).setdefault(score["name"], []).append(
                float(score["value_num"])
            )
    return {
        version: _version_metrics(version, rows, values.get(version, {}))
        for version, rows in sorted(by_version.items())
    }


def _version_metrics(
    version: int, rows: list[dict[str, Any]], values: dict[str, list[float]]
) -> VersionMetrics:
    latencies = sorted(row["latency_us"] for row in rows if row["latency_us"] is not None)
    costs = [row["cost"] for row in rows if row["cost"] is not None]
    return VersionMetrics(
        version=version,
        requests=len(rows),
        errors=sum(1 for row in rows if row["status"] == "error"),
        latency_p50_us=nearest_rank(latencies, 50),
        latency_p95_us=nearest_rank(latencies, 95),
        input_tokens=sum(row["input_tokens"] or 0 for row in rows),
        output_tokens=sum(row["output_tokens"] or 0 for row in rows),
        cost=sum(costs) if costs else None,
        user_scores={n: ScoreMean(sum(v) / len(v), len(v)) for n, v in values.items()},
    )


def nearest_rank(ordered: list[int], percent: int) -> int | None:
    """The nearest-rank percentile of sorted values; None when there are none."""
    if not ordered:
        return None
    return ordered[max(math.ceil(len(ordered) * percent / 100), 1) - 1]


def _int(value: Any) -> int | None:
    return None if value is None else int(value)
