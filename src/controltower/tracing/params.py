"""Query-string filters (API, web UI and CLI) parsed into TraceFilter and GroupFilter."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from controltower.errors import InvalidRequest
from controltower.tracing.query import GroupFilter, TraceFilter

# the query-string names of the trace list's filters, in the order the form shows them
TRACE_FILTER_PARAMS = (
    "since",
    "until",
    "name",
    "user",
    "session",
    "model",
    "status",
    "tags",
    "metadata",
    "min_cost",
    "min_latency",
    "q",
    "project",
)
GROUP_FILTER_PARAMS = ("since", "until", "user", "project")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200

# ASCII digits only: `\d` would take other scripts' digits, which int() may refuse
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)$", re.IGNORECASE | re.ASCII)
_SECONDS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m)?$", re.IGNORECASE | re.ASCII)
_DURATION_MS = {"ms": 1.0, "s": 1000.0, "m": 60000.0}
_PAGE_SIZE = re.compile(r"[0-9]{1,6}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_EARLIEST_US = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // _ONE_US

Params = Mapping[str, str]


def trace_filter(params: Params, now_us: int) -> TraceFilter:
    """The TraceFilter the query string asks for; InvalidRequest names the bad parameter."""
    status = _text(params, "status")
    if status is not None and status not in ("ok", "error"):
        raise InvalidRequest(
            f"status must be `ok` or `error`, got {_shown(status)}", param="status"
        )
    return TraceFilter(
        project=_text(params, "project"),
        since_us=_time(params, "since", now_us),
        until_us=_time(params, "until", now_us),
        name=_text(params, "name"),
        user_id=_text(params, "user"),
        session_id=_text(params, "session"),
        model=_text(params, "model"),
        status=status,
        tags=tuple(_split(params.get("tags", ""))),
        metadata=tuple(_metadata(params.get("metadata", ""))),
        min_cost=_number(params, "min_cost"),
        min_latency_ms=_duration_ms(params, "min_latency"),
        text=_text(params, "q"),
    )


def group_filter(params: Params, now_us: int) -> GroupFilter:
    """The GroupFilter of the sessions and users lists."""
    return GroupFilter(
        project=_text(params, "project"),
        since_us=_time(params, "since", now_us),
        until_us=_time(params, "until", now_us),
        user_id=_text(params, "user"),
    )


def page_size(params: Params) -> int:
    """The `limit` parameter, 1 to MAX_PAGE_SIZE (default DEFAULT_PAGE_SIZE)."""
    raw = _text(params, "limit")
    if raw is None:
        return DEFAULT_PAGE_SIZE
    if not _PAGE_SIZE.fullmatch(raw) or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        raise InvalidRequest(
            f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}, got {_shown(raw)}",
            param="limit",
        )
    return int(raw)


def parse_time(value: str, param: str, now_us: int) -> int:
    """µs since the epoch of an ISO date or date-time (UTC unless it says otherwise),
    or of a time that long ago: `30m`, `24h`, `7d`, `2w`."""
    text = value.strip()
    relative = _RELATIVE.match(text)
    if relative:
        amount, unit = relative.groups()
        ago = float(amount) * _SECONDS[unit.lower()] * 1_000_000
        if not ago <= now_us - _EARLIEST_US:  # also inf, from a few hundred digits
            raise InvalidRequest(
                f"{param} reaches back before the year 1: {_shown(value)}", param=param
            )
        return now_us - round(ago)
    if text.lower() == "now":
        return now_us
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(
            f"{param} must be an ISO date or date-time (2024-05-01, 2024-05-01T12:00:00Z) "
            f"or a time ago like 30m, 24h or 7d; got {_shown(value)}",
            param=param,
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - _EPOCH) // _ONE_US


def _shown(value: str) -> str:
    """The value as an error message quotes it: the start of a long one."""
    return repr(value if len(value) <= 60 else value[:60] + "…")


def _text(params: Params, name: str) -> str | None:
    value = params.get(name, "").strip()
    return value or None


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _metadata(value: str) -> list[tuple[str, str | None]]:
    pairs: list[tuple[str, str | None]] = []
    for entry in _split(value):
        key, sep, wanted = entry.partition("=")
        if not key.strip():
            raise InvalidRequest(
                f"metadata entries are `key` or `key=value`, got {_shown(entry)}", param="metadata"
            )
        pairs.append((key.strip(), wanted.strip() if sep else None))
    return pairs


def _number(params: Params, name: str) -> float | None:
    raw = _text(params, name)
    if raw is None:
        return None
    try:
        number = float(raw.lstrip("$"))
    except ValueError:
        number = -1.0
    if not number >= 0 or number == float("inf"):
        raise InvalidRequest(f"{name} must be a number of 0 or more, got {_shown(raw)}", param=name)
    return number


def _duration_ms(params: Params, name: str) -> float | None:
    raw = _text(params, name)
    if raw is None:
        return None
    match = _DURATION.match(raw)
    if match is None:
        raise InvalidRequest(
            f"{name} must be milliseconds or a duration like 500ms, 2s or 1m; got {_shown(raw)}",
            param=name,
        )
    amount, unit = match.groups()
    return float(amount) * _DURATION_MS[(unit or "ms").lower()]


def _time(params: Params, name: str, now_us: int) -> int | None:
    raw = _text(params, name)
    return None if raw is None else parse_time(raw, name, now_us)
