"""Pure domain model: traces, spans, scores, usage and ids. No I/O, no frameworks."""

from controltower.domain.ids import new_span_id, new_trace_id, now_us
from controltower.domain.score import SCORE_SOURCES, Score, ScoreSource, ScoreType
from controltower.domain.trace import (
    USAGE_KINDS,
    Billing,
    CallTrace,
    Span,
    SpanKind,
    Status,
    Trace,
    TraceRecord,
    Usage,
    counted_calls,
)

__all__ = [
    "SCORE_SOURCES",
    "USAGE_KINDS",
    "Billing",
    "CallTrace",
    "Score",
    "ScoreSource",
    "ScoreType",
    "Span",
    "SpanKind",
    "Status",
    "Trace",
    "TraceRecord",
    "Usage",
    "counted_calls",
    "new_span_id",
    "new_trace_id",
    "now_us",
]
