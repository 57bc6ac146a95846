"""Pure domain model: traces, spans, usage and ids. No I/O, no frameworks."""

from controltower.domain.ids import new_span_id, new_trace_id, now_us
from controltower.domain.trace import CallTrace, Span, SpanKind, Status, Trace, TraceRecord, Usage

__all__ = [
    "CallTrace",
    "Span",
    "SpanKind",
    "Status",
    "Trace",
    "TraceRecord",
    "Usage",
    "new_span_id",
    "new_trace_id",
    "now_us",
]
