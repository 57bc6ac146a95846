"""Spend reports: what the gateway's calls cost, by who or what made them, over time.

The store keeps one spend entry per gateway call (see `controltower.domain.Billing`): its
project, API key, end user, model alias, deployment, prompt version and tags, the tokens
and the USD the provider billed, what its budgets reserved, and, for an answer served
from the cache, what it saved. A report groups the entries of a time range by one of
those dimensions and by time bucket; the store sums, this module shapes the answer.

Provider-billed cost, cache savings and reservations are kept apart, so that a report
can be reconciled with a provider's bill: `cost` is what the providers billed (a cache
hit bills nothing), `saved` what cache hits would have cost, `reserved` what budgets
held while the calls ran (released or settled to `cost` when each call ended).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from controltower.errors import InvalidRequest
from controltower.tracing.params import Params, parse_time

SpendBy = Literal["project", "key", "user", "model", "deployment", "prompt", "tag"]
SPEND_BY: tuple[SpendBy, ...] = ("project", "key", "user", "model", "deployment", "prompt", "tag")
INTERVALS = {"hour": 3_600_000_000, "day": 86_400_000_000, "week": 604_800_000_000}
# weeks start on Monday: 1970-01-05, four days after the epoch (a Thursday)
WEEK_OFFSET_US = 4 * 86_400_000_000
# the dimensions whose column is named otherwise
_COLUMNS = {"key": "key_id", "user": "user_id", "tag": "tags"}
DEFAULT_SINCE = "7d"
DEFAULT_GROUPS = 100
MAX_GROUPS = 1000
MAX_BUCKETS = 5000
# the sums of a group in one bucket, in this order after (bucket, group)
SUMS = (
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "cost",
    "cache_hits",
    "saved",
    "reserved",
)


@dataclass(frozen=True, slots=True)
class SpendQuery:
    """One spend report: group by `by`, bucket by `interval`, from `since_us` to `until_us`
    (µs since the epoch), of one project or all; the `limit` dearest groups."""

    by: SpendBy = "project"
    interval: str = "day"
    since_us: int = 0
    until_us: int | None = None
    project: str | None = None
    limit: int = DEFAULT_GROUPS

    @property
    def step_us(self) -> int:
        """The width of a bucket, in µs."""
        return INTERVALS[self.interval]

    @property
    def offset_us(self) -> int:
        """Where buckets start: on the hour and day in UTC, on Monday for weeks."""
        return WEEK_OFFSET_US if self.interval == "week" else 0

    def bucket(self, at_us: int) -> int:
        """The start of the bucket that holds this time."""
        return (at_us - self.offset_us) // self.step_us * self.step_us + self.offset_us


def spend_query(params: Params, now_us: int) -> SpendQuery:
    """The SpendQuery of a query string (`by`, `interval`, `since`, `until`, `project`,
    `limit`); InvalidRequest names the parameter that is wrong and what it may be."""
    by = (params.get("by") or "project").strip()
    if by not in SPEND_BY:
        raise InvalidRequest(f"by must be one of {', '.join(SPEND_BY)}; got {by!r}", param="by")
    interval = (params.get("interval") or "day").strip()
    if interval not in INTERVALS:
        raise InvalidRequest(
            f"interval must be one of {', '.join(INTERVALS)}; got {interval!r}", param="interval"
        )
    since_us = parse_time(params.get("since") or DEFAULT_SINCE, "since", now_us)
    until = (params.get("until") or "").strip()
    until_us = parse_time(until, "until", now_us) if until else None
    if until_us is not None and until_us <= since_us:
        raise InvalidRequest("until must be after since", param="until")
    end = now_us if until_us is None else until_us
    if (end - since_us) // INTERVALS[interval] > MAX_BUCKETS:
        raise InvalidRequest(
            f"that range holds more than {MAX_BUCKETS} {interval}s; "
            "ask for a wider interval or a shorter range",
            param="interval",
        )
    raw_limit = (params.get("limit") or "").strip()
    limit = DEFAULT_GROUPS
    if raw_limit:
        if (
            not raw_limit.isascii()
            or not raw_limit.isdigit()
            or not 1 <= int(raw_limit) <= MAX_GROUPS
        ):
            raise InvalidRequest(
                f"limit must be a whole number from 1 to {MAX_GROUPS}, got {raw_limit[:20]!r}",
                param="limit",
            )
        limit = int(raw_limit)
    project = (params.get("project") or "").strip() or None
    return SpendQuery(by, interval, since_us, until_us, project, limit)


def group_value(entry: Mapping[str, Any], by: SpendBy) -> Any:
    """The value of one dimension of a stored spend entry (tags: the list of them)."""
    return entry.get(spend_column(by))


def spend_column(by: SpendBy) -> str:
    """The spend ledger's column a report groups by."""
    return _COLUMNS.get(by, by)


def group_entries(entries: Iterable[Mapping[str, Any]], query: SpendQuery) -> list[tuple[Any, ...]]:
    """Sum stored entries by (bucket, group value): what the SQL store's GROUP BY returns,
    for stores that keep entries in memory."""
    until = query.until_us
    sums: dict[tuple[int, Any], list[Any]] = {}
    for entry in entries:
        at = entry["at_us"]
        if at < query.since_us or (until is not None and at >= until):
            continue
        if query.project is not None and entry["project"] != query.project:
            continue
        value = group_value(entry, query.by)
        group = tuple(value) if isinstance(value, list) else value
        row = sums.setdefault((query.bucket(at), group), [0, 0, 0, 0, None, 0, None, None])
        row[0] += 1
        row[1] += entry["status"] == "error"
        row[2] += entry["input_tokens"] or 0
        row[3] += entry["output_tokens"] or 0
        row[4] = _add(row[4], entry["cost"])
        row[5] += entry["source"] == "cache"
        row[6] = _add(row[6], entry["saved"])
        row[7] = _add(row[7], entry["reserved"])
    return [
        (bucket, list(g) if isinstance(g, tuple) else g, *row) for (bucket, g), row in sums.items()
    ]


def spend_report(query: SpendQuery, grouped: Iterable[Iterable[Any]]) -> dict[str, Any]:
    """The report (API form) from sums by (bucket, group value, *SUMS): groups dearest
    first, each with its totals and its series of buckets, and the totals of all."""
    groups: dict[Any, dict[str, Any]] = {}
    totals = _zero()
    for row in grouped:
        bucket, value, *values = row
        sums = dict(zip(SUMS, values, strict=True))
        _accumulate(totals, sums)
        keys = (value or [None]) if query.by == "tag" else [value]
        for key in keys:
            group = groups.get(key)
            if group is None:
                group = groups[key] = {"key": key, **_zero(), "series": {}}
            _accumulate(group, sums)
            point = group["series"].setdefault(bucket, {"bucket": bucket, **_zero()})
            _accumulate(point, sums)
    ordered = sorted(
        groups.values(), key=lambda g: (-(g["cost"] or 0), -g["requests"], str(g["key"]))
    )
    shown = ordered[: query.limit]
    for group in shown:
        series = sorted(group["series"].values(), key=lambda p: p["bucket"])
        for point in series:
            point["bucket"] = us_iso(point["bucket"])
            _round(point)
        group["series"] = series
        _round(group)
    _round(totals)
    return {
        "by": query.by,
        "interval": query.interval,
        "since": us_iso(query.since_us),
        "until": None if query.until_us is None else us_iso(query.until_us),
        "project": query.project,
        "currency": "USD",
        "totals": totals,
        "groups": shown,
        "groups_left_out": len(ordered) - len(shown),
    }


def report_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One flat row per group and bucket (for CSV): bucket, the group's key, the sums."""
    by = report["by"]
    rows = []
    for group in report["groups"]:
        for point in group["series"]:
            rows.append(
                {"bucket": point["bucket"], by: group["key"], **{k: point[k] for k in SUMS}}
            )
    rows.sort(key=lambda r: (r["bucket"], str(r[by])))
    return rows


def us_iso(at_us: int) -> str:
    """An ISO-8601 UTC time of µs since the epoch, to the second."""
    return datetime.fromtimestamp(at_us // 1_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _zero() -> dict[str, Any]:
    return {name: (None if name in ("cost", "saved", "reserved") else 0) for name in SUMS}


def _accumulate(into: dict[str, Any], sums: Mapping[str, Any]) -> None:
    for name in SUMS:
        value = sums[name]
        into[name] = (
            _add(into[name], value)
            if name in ("cost", "saved", "reserved")
            else into[name] + int(value or 0)
        )


def _add(total: float | None, value: float | None) -> float | None:
    if value is None:
        return total
    return value if total is None else total + value


def _round(sums: dict[str, Any]) -> None:
    for name in ("cost", "saved", "reserved"):
        if sums[name] is not None:
            sums[name] = round(float(sums[name]), 9)
