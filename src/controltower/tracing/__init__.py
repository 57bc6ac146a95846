"""Recording traces without ever slowing or failing the caller."""

from controltower.tracing.sink import InMemorySink, TraceReader, TraceSink, TraceStore
from controltower.tracing.writer import TraceWriter, WriterStats

__all__ = ["InMemorySink", "TraceReader", "TraceSink", "TraceStore", "TraceWriter", "WriterStats"]
