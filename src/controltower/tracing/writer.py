"""A bounded queue drained by a background thread that writes traces in batches.

No record can hold back another: while the store is down a batch is retried whole with
backoff; when the store refuses a batch, it is split until the bad record is found, and
that record is set aside as a dead letter with its error (counted, logged).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from controltower.domain import TraceRecord, now_us
from controltower.errors import StoreUnavailable
from controltower.tracing.batch_queue import BatchQueue
from controltower.tracing.normalize import clean_text, dead_letter_payload, normalize_record
from controltower.tracing.sink import DeadLetter, DeadLetterSink, Pingable, TraceSink

log = logging.getLogger("controltower.tracing")
OUTAGE_RETRIES = 5  # "unavailable" answers believed before a reachable store's batch is split


@dataclass(slots=True)
class WriterStats:
    """Counters for logs, `/health` and metrics."""

    enqueued: int = 0
    written: int = 0
    dropped: int = 0
    failed_writes: int = 0
    dead_lettered: int = 0  # records the store refused, set aside with their error
    normalized: int = 0  # records with values changed to be storable (see tracing.normalize)


class TraceWriter:
    """`enqueue` never blocks: when the queue is full the record is dropped and counted."""

    def __init__(
        self,
        sink: TraceSink,
        *,
        max_queue: int = 10_000,
        batch_size: int = 256,
        flush_interval_s: float = 0.5,
        enrich: Callable[[TraceRecord], None] | None = None,
        max_backoff_s: float = 10.0,
        on_pass: Callable[[WriterStats, int], None] | None = None,
    ) -> None:
        self._sink = sink
        self._interval = flush_interval_s
        self._enrich = enrich
        self._on_pass = on_pass  # after each pass of the thread: its stats and queue depth
        self._max_backoff_s = max_backoff_s
        self._queue: BatchQueue[TraceRecord] = BatchQueue(max_queue, batch_size)
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.stats = WriterStats()
        self._reported_drops = 0
        self._fork_hook = False

    @property
    def queue_depth(self) -> int:
        """Traces waiting to be written."""
        return len(self._queue)

    @property
    def capacity(self) -> int:
        """The most traces the queue holds."""
        return self._queue.max_items

    def start(self) -> None:
        """Start the writer thread (again in a forked child)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name="controltower-trace-writer", daemon=True
        )
        self._thread.start()
        if not self._fork_hook and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork)
            self._fork_hook = True

    def enqueue(self, record: TraceRecord) -> bool:
        """Queue a finished trace; False (and counted) when the queue is full."""
        if not self._queue.put(record):
            self.stats.dropped += 1
            return False
        self.stats.enqueued += 1
        return True

    def offer(self, records: list[TraceRecord]) -> bool:
        """Queue a batch whole, or none of it (and count nothing) when there is no room.

        For callers that can push back (ingest answers 503 and the exporter retries)
        instead of losing data.
        """
        if not self._queue.offer(records):
            return False
        self.stats.enqueued += len(records)
        return True

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything queued so far is written; False on timeout."""
        return self._queue.flush(timeout_s, self._draining)

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Flush, stop the thread, and count whatever could not be written as dropped."""
        self.flush(timeout_s)
        self._stopping = True
        self._queue.wake()
        if self._thread is not None:
            self._thread.join(timeout_s)
        left = self._queue.clear()
        if left:
            self.stats.dropped += left
            log.error("trace writer stopped with %d traces unwritten; they are lost", left)

    def _draining(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        queue = self._queue
        while not self._stopping:
            queue.wait(self._interval)
            while queue and not self._stopping:
                batch = queue.take()
                try:
                    self._write_batch(batch)
                finally:
                    queue.done()
            self._report_drops()
            if self._on_pass is not None:
                try:
                    self._on_pass(self.stats, len(queue))
                except Exception:
                    log.exception("the trace writer's pass hook failed")

    def _write_batch(self, batch: list[TraceRecord]) -> None:
        for record in batch:
            self._prepare(record)
        self._write_isolating(batch)

    def _write_isolating(self, batch: list[TraceRecord]) -> None:
        """Write the batch; while the store is down, retry it whole with backoff; when the
        store refuses it, split it, write the halves, and set aside the one bad record."""
        delay = 0.1
        outages = 0
        failure: Exception
        while True:
            try:
                self._sink.write(batch)
                self.stats.written += len(batch)
                return
            except Exception as exc:
                self.stats.failed_writes += 1
                if self._stopping:
                    self.stats.dropped += len(batch)
                    return
                if not self._outage(exc, outages):
                    failure = exc
                    break
                log.warning(
                    "writing %d traces failed (%s); retrying in %.1f s", len(batch), exc, delay
                )
                outages += 1
                time.sleep(delay)
                delay = min(delay * 2, self._max_backoff_s)
        if len(batch) == 1:
            self._set_aside(batch[0], failure)
            return
        middle = len(batch) // 2
        self._write_isolating(batch[:middle])
        self._write_isolating(batch[middle:])

    def _outage(self, exc: Exception, outages: int) -> bool:
        """Whether a failed write is the store's (retry) rather than the batch's (split).

        A store that says it is unavailable is believed a few times; after that, or for any
        other error, the batch is at fault unless a ping shows the store is down.
        """
        said_so = isinstance(exc, StoreUnavailable | ConnectionError | TimeoutError)
        if said_so and outages < OUTAGE_RETRIES:
            return True
        if not isinstance(self._sink, Pingable):
            return False
        try:
            self._sink.ping()
        except Exception:
            return True
        return False

    def _set_aside(self, record: TraceRecord, exc: Exception) -> None:
        trace_id = clean_text(str(record.trace.id), 200)
        error = clean_text(f"{type(exc).__name__}: {exc}", 4000)
        log.error("trace %s cannot be stored (%s); setting it aside", trace_id, error)
        letter = DeadLetter(trace_id, error, dead_letter_payload(record), now_us())
        sink = self._sink
        try:
            if not isinstance(sink, DeadLetterSink):
                raise TypeError(f"{type(sink).__name__} keeps no dead letters")
            sink.set_aside(letter)
        except Exception as aside:
            self.stats.dropped += 1
            log.error(
                "trace %s could not be set aside either (%s); it is lost: %s",
                trace_id,
                aside,
                letter.payload[:2000],
            )
            return
        self.stats.dead_lettered += 1

    def _prepare(self, record: TraceRecord) -> None:
        # settle (a stream's deferred decoding), make every value storable, then price and
        # total what is left: totals of normalised counts cannot overflow a column
        try:
            record.settle()
        except Exception:
            log.exception("settling trace %s failed; writing it as it is", record.trace.id)
        try:
            if normalize_record(record):
                self.stats.normalized += 1
        except Exception:  # what still fails is found by the store and set aside
            log.exception("normalising trace %s failed", record.trace.id)
        try:
            if self._enrich is not None:
                self._enrich(record)
            record.roll_up()
        except Exception:
            log.exception("enriching trace %s failed; writing it as it is", record.trace.id)

    def _report_drops(self) -> None:
        dropped = self.stats.dropped
        if dropped > self._reported_drops:
            log.error(
                "trace queue full: %d traces dropped so far (queue size %d)",
                dropped,
                self._queue.max_items,
            )
            self._reported_drops = dropped

    def _after_fork(self) -> None:
        if self._thread is None:
            return
        # what the parent queued is the parent's to write: the child starts empty
        self._thread = None
        self._queue = BatchQueue(self._queue.max_items, self._queue.batch_size)
        self.start()
