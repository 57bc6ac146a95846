"""Recording traces without ever slowing or failing the caller.

The names are imported on first use, so that a submodule (the SDK takes only
`tracing.batch_queue`) costs no more than itself.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {
    "GroupFilter": "controltower.tracing.query",
    "TraceFilter": "controltower.tracing.query",
    "RetentionPolicy": "controltower.tracing.retention",
    "RetentionSweeper": "controltower.tracing.retention",
    "DeadLetter": "controltower.tracing.sink",
    "DeadLetterSink": "controltower.tracing.sink",
    "InMemorySink": "controltower.tracing.sink",
    "ObservabilityStore": "controltower.tracing.sink",
    "TraceReader": "controltower.tracing.sink",
    "TraceSink": "controltower.tracing.sink",
    "TraceStore": "controltower.tracing.sink",
    "TraceWriter": "controltower.tracing.writer",
    "WriterStats": "controltower.tracing.writer",
}
__all__ = [
    "DeadLetter",
    "DeadLetterSink",
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

if TYPE_CHECKING:
    from controltower.tracing.query import GroupFilter, TraceFilter
    from controltower.tracing.retention import RetentionPolicy, RetentionSweeper
    from controltower.tracing.sink import (
        DeadLetter,
        DeadLetterSink,
        InMemorySink,
        ObservabilityStore,
        TraceReader,
        TraceSink,
        TraceStore,
    )
    from controltower.tracing.writer import TraceWriter, WriterStats


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'controltower.tracing' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
