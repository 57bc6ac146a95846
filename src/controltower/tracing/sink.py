"""The `TraceSink` seam the trace writer flushes into, and its in-memory fake."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from controltower.domain import TraceRecord


@runtime_checkable
class TraceSink(Protocol):
    """Durable storage for finished traces; `write` may raise, the writer retries."""

    def write(self, records: Sequence[TraceRecord]) -> None:
        """Store a batch of traces with their spans, all or nothing."""
        ...


class InMemorySink:
    """Keeps written traces in a list; can be told to fail, to test the writer's retries."""

    def __init__(self) -> None:
        self.records: list[TraceRecord] = []
        self.fail_next = 0
        self._lock = threading.Lock()

    def write(self, records: Sequence[TraceRecord]) -> None:
        """Append the batch, or raise while `fail_next` is positive."""
        with self._lock:
            if self.fail_next:
                self.fail_next -= 1
                raise ConnectionError("in-memory sink told to fail")
            self.records.extend(records)


@runtime_checkable
class TraceReader(Protocol):
    """Reads stored traces in their API form (newest first, keyset pages)."""

    def list_traces(
        self, limit: int = 50, cursor: str | None = None, project: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of traces without spans, and the cursor of the next page."""
        ...

    def get_trace(self, trace_id: str) -> dict[str, Any] | None:
        """One trace with its `spans`, or None."""
        ...


@runtime_checkable
class TraceStore(TraceSink, TraceReader, Protocol):
    """A store the gateway both writes traces to and serves them from."""
