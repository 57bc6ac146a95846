"""The `TraceSink` seam the trace writer flushes into, and its in-memory fake."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from controltower.domain import Score, TraceRecord
from controltower.tracing.query import GroupFilter, TraceFilter

if TYPE_CHECKING:
    from controltower.prompts.metrics import MetricsWindow, VersionMetrics
    from controltower.prompts.store import PromptStore


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
        self, limit: int = 50, cursor: str | None = None, where: TraceFilter | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of traces without spans, and the cursor of the next page."""
        ...

    def get_trace(self, trace_id: str, span_io: bool = True) -> dict[str, Any] | None:
        """One trace with its `spans` and `scores` (spans without input/output unless
        span_io), or None."""
        ...


@runtime_checkable
class TraceStore(TraceSink, TraceReader, Protocol):
    """A store the gateway both writes traces to and serves them from."""


@runtime_checkable
class ObservabilityStore(TraceStore, Protocol):
    """Everything the query API and the web UI read, and the writes beside traces."""

    def get_span(self, trace_id: str, span_id: str) -> dict[str, Any] | None:
        """One span in API form, or None."""
        ...

    def list_sessions(
        self, limit: int = 50, cursor: str | None = None, where: GroupFilter | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Sessions, most recently active first, with their trace count and totals."""
        ...

    def get_session(self, session_id: str, project: str | None = None) -> dict[str, Any] | None:
        """A session's totals and its traces in the order they started, or None."""
        ...

    def list_users(
        self, limit: int = 50, cursor: str | None = None, where: GroupFilter | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Users, most recently active first, with their traces, tokens and cost."""
        ...

    def get_user(self, user_id: str, project: str | None = None) -> dict[str, Any] | None:
        """One user's totals (traces, sessions, tokens, cost, first and last seen), or None."""
        ...

    def write_scores(self, scores: Sequence[Score]) -> None:
        """Store scores; a score id seen before replaces the earlier score."""
        ...

    def list_scores(
        self, trace_id: str | None = None, name: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Scores newest first, of one trace and/or one name."""
        ...

    def scores_of_traces(
        self, trace_ids: Sequence[str], per_trace: int = 5
    ) -> dict[str, list[dict[str, Any]]]:
        """The newest scores of each of several traces, in one read (for a list page)."""
        ...

    def delete_user_data(self, user_id: str, project: str | None = None) -> dict[str, int]:
        """Delete every trace, span and score of a user; the counts of what was deleted."""
        ...

    def delete_before(
        self, cutoff_us: int, project: str | None = None, keep_projects: tuple[str, ...] = ()
    ) -> dict[str, int]:
        """Delete traces started before the cutoff (of one project, or of all but some)."""
        ...

    def prompt_metrics(
        self, name: str, window: MetricsWindow | None = None
    ) -> dict[int, VersionMetrics]:
        """Per-version metrics of a prompt, by version (only the versions that served)."""
        ...

    def prompt_store(self) -> PromptStore:
        """The prompt store kept in the same database as these traces."""
        ...

    def close(self) -> None:
        """Release the store's connections."""
        ...

    def forget_after_fork(self) -> None:
        """In a forked child: drop the connections inherited from the parent unclosed (the
        parent still uses them); the store opens new ones when it is used again."""
        ...
