"""The `TraceSink` seam the trace writer flushes into, and its in-memory fake."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from controltower.domain import Score, TraceRecord
from controltower.tracing.query import GroupFilter, TraceFilter

if TYPE_CHECKING:
    from controltower.access.store import KeyStore
    from controltower.evals.store import EvalStore
    from controltower.prompts.metrics import MetricsWindow, VersionMetrics
    from controltower.prompts.store import PromptStore
    from controltower.tracing.spend import SpendQuery


@runtime_checkable
class TraceSink(Protocol):
    """Durable storage for finished traces; `write` may raise, the writer retries."""

    def write(self, records: Sequence[TraceRecord]) -> None:
        """Store a batch of traces with their spans, all or nothing.

        Raise `errors.StoreUnavailable` when the store cannot be reached (the writer
        retries the batch later); any other error says the batch itself is at fault
        (the writer splits it to find the record, and sets that one aside).
        """
        ...


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record the store refused, kept as text with the error, for an operator to read."""

    trace_id: str
    error: str
    payload: str  # the record as ASCII JSON (see tracing.normalize.dead_letter_payload)
    created_us: int


@runtime_checkable
class DeadLetterSink(Protocol):
    """Where the trace writer sets aside a record the store refuses, so it holds up no other."""

    def set_aside(self, letter: DeadLetter) -> None:
        """Keep the letter (plain text columns only, so nothing in it can be refused)."""
        ...


@runtime_checkable
class Pingable(Protocol):
    """A sink that can tell whether it is reachable at all."""

    def ping(self) -> None:
        """Raise when the store cannot be reached."""
        ...


class InMemorySink:
    """Keeps written traces in a list; can be told to fail, to test the writer's retries.

    `fail_next` simulates an outage (writes and pings raise `ConnectionError`); a trace id
    in `refuse` makes every batch holding it fail as a bad record would.
    """

    def __init__(self) -> None:
        self.records: list[TraceRecord] = []
        self.letters: list[DeadLetter] = []
        self.fail_next = 0
        self.refuse: set[str] = set()
        self._lock = threading.Lock()

    def write(self, records: Sequence[TraceRecord]) -> None:
        """Append the batch, or raise while `fail_next` is positive or a record is refused."""
        with self._lock:
            if self.fail_next:
                self.fail_next -= 1
                raise ConnectionError("in-memory sink told to fail")
            refused = [r.trace.id for r in records if r.trace.id in self.refuse]
            if refused:
                raise ValueError(f"in-memory sink refuses trace {refused[0]}")
            self.records.extend(records)

    def set_aside(self, letter: DeadLetter) -> None:
        """Keep the letter in `letters`."""
        with self._lock:
            self.letters.append(letter)

    def ping(self) -> None:
        """Raise while the simulated outage lasts."""
        if self.fail_next:
            raise ConnectionError("in-memory sink told to fail")


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

    def spend_report(self, query: SpendQuery) -> dict[str, Any]:
        """Spend of the gateway's calls by one dimension and time bucket (tracing/spend.py)."""
        ...

    def prompt_store(self) -> PromptStore:
        """The prompt store kept in the same database as these traces."""
        ...

    def eval_store(self) -> EvalStore:
        """The datasets, eval runs and human reviews kept in the same database."""
        ...

    def key_store(self) -> KeyStore:
        """The API keys kept in the same database."""
        ...

    def set_aside(self, letter: DeadLetter) -> None:
        """Keep a record the store refused, as text with its error (see DeadLetterSink)."""
        ...

    def dead_letters(self, limit: int = 50) -> list[DeadLetter]:
        """The records set aside, newest first."""
        ...

    def ping(self) -> None:
        """Raise when the store cannot be reached."""
        ...

    def close(self) -> None:
        """Release the store's connections."""
        ...

    def forget_after_fork(self) -> None:
        """In a forked child: drop the connections inherited from the parent unclosed (the
        parent still uses them); the store opens new ones when it is used again."""
        ...
