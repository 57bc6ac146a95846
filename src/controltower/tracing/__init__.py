"""Recording traces without ever slowing or failing the caller."""

from controltower.tracing.query import GroupFilter, TraceFilter
from controltower.tracing.retention import RetentionPolicy, RetentionSweeper
from controltower.tracing.sink import (
    InMemorySink,
    ObservabilityStore,
    TraceReader,
    TraceSink,
    TraceStore,
)
from controltower.tracing.writer import TraceWriter, WriterStats

__all__ = [
    "GroupFilter",
    "InMemorySink",
    "ObservabilityStore",
    "RetentionPolicy",
    "RetentionSweeper",
    "TraceFilter",
    "TraceReader",
    "TraceSink",
    "TraceStore",
    "TraceWriter",
    "WriterStats",
]
