"""Conversions: domain TraceRecord → row dicts → API dicts, shared by every store."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import orjson

from controltower.domain.score import Score
from controltower.domain.trace import Span, Trace, TraceRecord, Usage
from controltower.tracing.normalize import clean_json, too_deep

Row = dict[str, Any]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def json_dumps(value: Any) -> str:
    """Encode a JSON column value; objects orjson cannot encode are stored as their str()."""
    return orjson.dumps(value, default=str, option=_JSON_OPTIONS).decode()


def json_loads(text: str | bytes | float) -> Any:
    """Decode a JSON column value; nesting deeper than the writer keeps (a row written
    before it cut such values) is cut here, so that every answer can be encoded again."""
    if isinstance(text, int | float):  # SQLite hands a bare JSON number back as a number
        return text
    value = orjson.loads(text)
    if too_deep(text):
        value = clean_json(value)
    return value


def record_to_rows(record: TraceRecord) -> tuple[Row, list[Row]]:
    """The `traces` row and the `spans` rows of one record, keyed by column key."""
    trace_row = trace_to_row(record.trace)
    trace_row["model"] = first_model(record.spans)
    return trace_row, [span_to_row(span) for span in record.spans]


def first_model(spans: list[Span]) -> str | None:
    """The model of the earliest generation span that names one."""
    best: Span | None = None
    for span in spans:
        if (
            span.kind == "generation"
            and span.model
            and (best is None or span.start_us < best.start_us)
        ):
            best = span
    return None if best is None else best.model


def trace_to_row(trace: Trace) -> Row:
    """The `traces` row of a trace."""
    return {
        "id": trace.id,
        "project": trace.project,
        "name": trace.name,
        "session_id": trace.session_id,
        "user_id": trace.user_id,
        "tags": list(trace.tags),
        "meta": trace.metadata,
        "input": trace.input,
        "output": trace.output,
        "start_us": trace.start_us,
        "end_us": trace.end_us,
        "latency_us": None if trace.end_us is None else trace.end_us - trace.start_us,
        "status": trace.status,
        **_usage_row(trace.usage),
        "total_tokens": trace.usage.total_tokens,
        "cost": trace.cost,
        "environment": trace.environment,
        "release": trace.release,
        "model": None,
    }


def span_to_row(span: Span) -> Row:
    """The `spans` row of a span."""
    return {
        "id": span.id,
        "trace_id": span.trace_id,
        "parent_id": span.parent_id,
        "kind": span.kind,
        "name": span.name,
        "start_us": span.start_us,
        "end_us": span.end_us,
        "latency_us": span.latency_us,
        "input": span.input,
        "output": span.output,
        "model": span.model,
        "provider": span.provider,
        "deployment": span.deployment,
        "parameters": span.parameters,
        **_usage_row(span.usage),
        "cost": span.cost,
        "ttft_us": span.ttft_us,
        "status": span.status,
        "error": span.error,
        "prompt_name": span.prompt_name,
        "prompt_version": span.prompt_version,
        "attributes": span.attributes,
    }


def trace_row_to_api(row: Mapping[str, Any]) -> Row:
    """The API form of a `traces` row (without spans)."""
    return {
        "id": row["id"],
        "project": row["project"],
        "name": row["name"],
        "session_id": row["session_id"],
        "user_id": row["user_id"],
        "tags": row["tags"] if row["tags"] is not None else [],
        "metadata": row["meta"] if row["meta"] is not None else {},
        "input": row["input"],
        "output": row["output"],
        "start_time": us_to_iso(row["start_us"]),
        "end_time": us_to_iso(row["end_us"]),
        "latency_ms": us_to_ms(row["latency_us"]),
        "status": row["status"],
        "usage": {**_usage_api(row), "total_tokens": row["total_tokens"]},
        "cost": row["cost"],
        "environment": row["environment"],
        "release": row["release"],
        "model": row["model"],
    }


def span_row_to_api(row: Mapping[str, Any]) -> Row:
    """The API form of a `spans` row."""
    return {
        "id": row["id"],
        "trace_id": row["trace_id"],
        "parent_id": row["parent_id"],
        "kind": row["kind"],
        "name": row["name"],
        "start_time": us_to_iso(row["start_us"]),
        "end_time": us_to_iso(row["end_us"]),
        "latency_ms": us_to_ms(row["latency_us"]),
        "input": row["input"],
        "output": row["output"],
        "model": row["model"],
        "provider": row["provider"],
        "deployment": row["deployment"],
        "parameters": row["parameters"] if row["parameters"] is not None else {},
        "usage": _usage_api(row),
        "cost": row["cost"],
        "ttft_ms": us_to_ms(row["ttft_us"]),
        "status": row["status"],
        "error": row["error"],
        "prompt_name": row["prompt_name"],
        "prompt_version": row["prompt_version"],
        "attributes": row["attributes"] if row["attributes"] is not None else {},
    }


def score_to_row(score: Score) -> Row:
    """The `scores` row of a score."""
    value = score.value
    return {
        "id": score.id,
        "project": score.project,
        "trace_id": score.trace_id,
        "span_id": score.span_id,
        "name": score.name,
        "data_type": score.data_type,
        "value_num": None if isinstance(value, str) else float(value),
        "value_str": value if isinstance(value, str) else None,
        "source": score.source,
        "comment": score.comment,
        "author": score.author,
        "created_us": score.created_us,
    }


def score_row_to_api(row: Mapping[str, Any]) -> Row:
    """The API form of a `scores` row."""
    data_type = row["data_type"]
    value: Any = row["value_str"] if data_type == "categorical" else row["value_num"]
    if data_type == "boolean":
        value = bool(value)
    return {
        "id": row["id"],
        "trace_id": row["trace_id"],
        "span_id": row["span_id"],
        "name": row["name"],
        "value": value,
        "data_type": data_type,
        "source": row["source"],
        "comment": row["comment"],
        "author": row["author"],
        "created_time": us_to_iso(row["created_us"]),
    }


def us_to_iso(us: int | None) -> str | None:
    """Microseconds since the epoch as ISO-8601 UTC with microseconds, e.g. `…T12:00:00.000001Z`."""
    if us is None:
        return None
    seconds, micros = divmod(us, 1_000_000)
    return f"{_iso_second(seconds)}.{micros:06d}Z"


@lru_cache(maxsize=65_536)
def _iso_second(seconds: int) -> str:
    # a large trace's spans share their seconds: formatting each second once is 4x faster
    return (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")


def us_to_ms(us: int | None) -> float | None:
    """Microseconds as float milliseconds."""
    return None if us is None else us / 1000


def _usage_row(usage: Usage) -> Row:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cached_tokens": usage.cached_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
    }


def _usage_api(row: Mapping[str, Any]) -> Row:
    return {
        "input_tokens": row["input_tokens"],
        "output_tokens": row["output_tokens"],
        "cached_tokens": row["cached_tokens"],
        "reasoning_tokens": row["reasoning_tokens"],
    }
