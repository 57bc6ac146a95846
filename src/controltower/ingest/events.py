"""The SDK's JSON ingest events → partial TraceRecords and Scores.

A batch is `[{"type": "span" | "trace" | "score", "body": {...}}, ...]`. Each event is
checked on its own: a bad one gets an error naming the field, the others are kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from controltower.domain import (
    SCORE_SOURCES,
    Score,
    Span,
    SpanKind,
    Trace,
    TraceRecord,
    Usage,
    new_trace_id,
    now_us,
)
from controltower.domain.trace import INT64_MAX, MAX_COST, MAX_FUTURE_US, MAX_TOKENS, trace_of
from controltower.ingest.values import shown
from controltower.tracing.normalize import storable_cost

_SPAN_KINDS: tuple[SpanKind, ...] = (
    "generation",
    "span",
    "tool",
    "retrieval",
    "embedding",
    "guardrail",
    "event",
)
_STATUSES = ("ok", "error")
_HEX = "0123456789abcdef"
_USAGE_KEYS = ("input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens")
_SPAN_TEXT = ("model", "provider", "deployment", "error", "prompt_name")
_TRACE_TEXT = ("name", "user_id", "session_id", "environment", "release")
_TIME_KEYS = frozenset({"start_us", "end_us", "created_us"})


class _Invalid(ValueError):
    """An event that cannot be stored; the message names the field."""


@dataclass(slots=True)
class IngestResult:
    """What a batch of SDK events held: partial trace records, scores, and the bad events."""

    records: list[TraceRecord] = field(default_factory=list)
    scores: list[Score] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)  # (index in the batch, why)
    accepted: int = 0  # events kept
    score_events: list[int] = field(default_factory=list)  # each score's index in the batch

    def refuse_scores(self, refused: dict[int, str]) -> None:
        """Drop scores (by position in `scores`) with the reason each is refused."""
        kept: list[Score] = []
        indexes: list[int] = []
        for position, (score, index) in enumerate(zip(self.scores, self.score_events, strict=True)):
            if position in refused:
                self.errors.append((index, refused[position]))
                self.accepted -= 1
            else:
                kept.append(score)
                indexes.append(index)
        self.scores, self.score_events = kept, indexes
        self.errors.sort()


def records_from_events(events: list[Any]) -> IngestResult:
    """Map a batch of SDK events: one partial record per trace id, scores, errors by index."""
    result = IngestResult()
    spans: dict[str, list[Span]] = {}
    updates: dict[str, list[dict[str, Any]]] = {}
    for index, event in enumerate(events):
        try:
            kind, body = _unwrap(event)
            if kind == "span":
                span = _span(body)
                spans.setdefault(span.trace_id, []).append(span)
            elif kind == "trace":
                update = _trace_update(body)
                updates.setdefault(update["id"], []).append(update)
            else:
                result.scores.append(_score(body))
                result.score_events.append(index)
        except _Invalid as exc:
            result.errors.append((index, str(exc)))
    result.accepted = len(events) - len(result.errors)
    for trace_id in {**spans, **updates}:
        result.records.extend(_records(trace_id, spans.get(trace_id, []), updates.get(trace_id)))
    return result


def _unwrap(event: Any) -> tuple[str, dict[str, Any]]:
    if not isinstance(event, dict):
        raise _Invalid("each event must be an object with `type` and `body`")
    kind = event.get("type")
    if kind not in ("span", "trace", "score"):
        raise _Invalid(f"`type` must be 'span', 'trace' or 'score', got {kind!r}")
    body = event.get("body")
    if not isinstance(body, dict):
        raise _Invalid(f"`body` of a {kind} event must be an object")
    return kind, body


def _span(body: dict[str, Any]) -> Span:
    start = _int(body, "start_us", required=True)
    assert start is not None
    end = _int(body, "end_us")
    if end is not None and end < start:
        raise _Invalid(f"`body.end_us` ({end}) is before `body.start_us` ({start})")
    span = Span(
        id=_hex(body, "id", 16, required=True) or "",
        trace_id=_hex(body, "trace_id", 32, required=True) or "",
        parent_id=_hex(body, "parent_id", 16),
        name=_name(body),
        kind=_choice(body, "kind", _SPAN_KINDS, "span"),
        start_us=start,
        end_us=end,
        input=body.get("input"),
        output=body.get("output"),
        parameters=_object(body, "parameters"),
        usage=_usage(body.get("usage")),
        cost=_number(body, "cost"),
        ttft_us=_int(body, "ttft_us"),
        prompt_version=_int(body, "prompt_version"),
        attributes=_object(body, "attributes"),
    )
    for key in _SPAN_TEXT:
        setattr(span, key, _text(body, key))
    span.status = _choice(body, "status", _STATUSES, "error" if span.error else "ok")
    return span


def _trace_update(body: dict[str, Any]) -> dict[str, Any]:
    update: dict[str, Any] = {"id": _hex(body, "id", 32, required=True)}
    for key in _TRACE_TEXT:
        value = _text(body, key)
        if value:
            update[key] = value
    for key in ("start_us", "end_us"):
        time_us = _int(body, key)
        if time_us is not None:
            update[key] = time_us
    if body.get("status") is not None:
        update["status"] = _choice(body, "status", _STATUSES, "ok")
    if body.get("tags") is not None:
        update["tags"] = _tags(body["tags"])
    if body.get("metadata") is not None:
        update["metadata"] = _object(body, "metadata")
    for key in ("input", "output"):
        if body.get(key) is not None:
            update[key] = body[key]
    return update


def _score(body: dict[str, Any]) -> Score:
    # scores are written as they come (the trace writer's normalising is for traces): each
    # text must be storable as it is, and a number finite
    value = body.get("value")
    if value is None or not isinstance(value, int | float | str):
        raise _Invalid("`body.value` is required: a number, true/false or a category string")
    if isinstance(value, str):
        _no_nul(value, "value")
    elif not isinstance(value, bool) and _finite(value) is None:
        raise _Invalid(f"`body.value` must be a finite number, got {shown(value)}")
    score_id = _no_nul(_text(body, "id"), "id") or new_trace_id()
    return Score(
        id=score_id,
        trace_id=_hex(body, "trace_id", 32, required=True) or "",
        name=_no_nul(_name(body), "name") or "",
        value=value if isinstance(value, bool | str) else float(value),
        created_us=_int(body, "created_us") or now_us(),
        span_id=_hex(body, "span_id", 16),
        source=_choice(body, "source", SCORE_SOURCES, "api"),
        comment=_no_nul(_text(body, "comment"), "comment"),
        author=_no_nul(_text(body, "author"), "author"),
    )


def _records(
    trace_id: str, spans: list[Span], updates: list[dict[str, Any]] | None
) -> list[TraceRecord]:
    if not spans:
        assert updates
        return [TraceRecord(_updated_trace(trace_id, updates), [], partial=True)]
    trace = trace_of(trace_id, spans)
    if updates is None:
        return [TraceRecord(trace, spans, partial=True)]
    if not any(span.parent_id is None for span in spans):
        # spans without the root only fill the trace's empty fields when merged; an
        # explicit update must overwrite, so it travels as a record of its own
        explicit = TraceRecord(_updated_trace(trace_id, updates), [], partial=True)
        return [TraceRecord(trace, spans, partial=True), explicit]
    for update in updates:
        _overlay(trace, update)
    return [TraceRecord(trace, spans, partial=True)]


def _updated_trace(trace_id: str, updates: list[dict[str, Any]]) -> Trace:
    first = updates[0]
    trace = Trace(id=trace_id, name="", start_us=first.get("start_us") or now_us())
    for update in updates:
        _overlay(trace, update)
    return trace


def _overlay(trace: Trace, update: dict[str, Any]) -> None:
    for key, value in update.items():
        if key == "tags":
            trace.tags = trace.tags + [tag for tag in value if tag not in trace.tags]
        elif key == "metadata":
            trace.metadata = {**trace.metadata, **value}
        elif key == "start_us":
            trace.start_us = min(trace.start_us, value)
        elif key == "end_us":
            trace.end_us = value if trace.end_us is None else max(trace.end_us, value)
        elif key != "id":
            setattr(trace, key, value)


def _hex(body: dict[str, Any], key: str, digits: int, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        if required:
            raise _Invalid(f"`body.{key}` is required ({digits} hex digits)")
        return None
    if isinstance(value, str) and len(value) == digits:
        value = value.lower()
        if not value.strip(_HEX) and value.strip("0"):
            return value
    raise _Invalid(f"`body.{key}` must be {digits} hex digits, not all zero, got {value!r:.80}")


def _name(body: dict[str, Any]) -> str:
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise _Invalid("`body.name` is required and must be a non-empty string")
    return name


def _no_nul(value: str | None, key: str) -> str | None:
    # the fields stored as they are (scores are not normalised like traces): no NUL
    if value is not None and "\x00" in value:
        raise _Invalid(f"`body.{key}` must not contain a NUL character")
    return value


def _text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None or isinstance(value, str):
        return value
    raise _Invalid(f"`body.{key}` must be a string or null, got {type(value).__name__}")


def _int(
    body: dict[str, Any],
    key: str,
    required: bool = False,
    where: str = "body",
    most: int = INT64_MAX,
) -> int | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= most:
        if key in _TIME_KEYS and value > now_us() + MAX_FUTURE_US:
            raise _Invalid(f"`{where}.{key}` ({value}) is more than a day in the future")
        return value
    need = "is required and must be" if required else "must be"
    bound = "2^63-1" if most == INT64_MAX else f"{most:,}"
    raise _Invalid(f"`{where}.{key}` {need} a whole number from 0 to {bound}, got {shown(value)}")


def _number(body: dict[str, Any], key: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    number = storable_cost(value)
    if number is not None:
        return number
    raise _Invalid(
        f"`body.{key}` must be a number from 0 to {MAX_COST:.0e} or null, got {shown(value)}"
    )


def _finite(value: int | float) -> float | None:
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _object(body: dict[str, Any], key: str) -> dict[str, Any]:
    value = body.get(key)
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    raise _Invalid(f"`body.{key}` must be an object, got {type(value).__name__}")


def _choice(body: dict[str, Any], key: str, allowed: tuple[Any, ...], default: Any) -> Any:
    value = body.get(key)
    if value is None:
        return default
    if value in allowed:
        return value
    names = ", ".join(repr(a) for a in allowed)
    raise _Invalid(f"`body.{key}` must be one of {names}, got {value!r:.80}")


def _usage(value: Any) -> Usage:
    if value is None:
        return Usage()
    if not isinstance(value, dict):
        raise _Invalid(f"`body.usage` must be an object, got {type(value).__name__}")
    counts = [_int(value, key, where="body.usage", most=MAX_TOKENS) for key in _USAGE_KEYS]
    return Usage(*counts)


def _tags(value: Any) -> list[str]:
    if isinstance(value, list) and all(isinstance(tag, str) for tag in value):
        return list(dict.fromkeys(value))
    raise _Invalid("`body.tags` must be an array of strings")
