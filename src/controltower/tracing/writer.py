"""A bounded queue drained by a background thread that writes traces in batches."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from controltower.domain import TraceRecord
from controltower.tracing.sink import TraceSink

log = logging.getLogger("controltower.tracing")


@dataclass(slots=True)
class WriterStats:
    """Counters for logs, `/health` and metrics."""

    enqueued: int = 0
    written: int = 0
    dropped: int = 0
    failed_writes: int = 0


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
    ) -> None:
        self._sink = sink
        self._max_queue = max_queue
        self._batch_size = batch_size
        self._interval = flush_interval_s
        self._enrich = enrich
        self._max_backoff_s = max_backoff_s
        self._queue: deque[TraceRecord] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._idle = threading.Condition()
        self._busy = False
        self.stats = WriterStats()
        self._reported_drops = 0
        self._fork_hook = False

    @property
    def queue_depth(self) -> int:
        """Traces waiting to be written."""
        return len(self._queue)

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
        queue = self._queue
        if len(queue) >= self._max_queue:
            self.stats.dropped += 1
            return False
        queue.append(record)
        self.stats.enqueued += 1
        if len(queue) == self._batch_size:
            self._wake.set()
        return True

    def offer(self, records: list[TraceRecord]) -> bool:
        """Queue a batch whole, or none of it (and count nothing) when there is no room.

        For callers that can push back (ingest answers 503 and the exporter retries)
        instead of losing data.
        """
        queue = self._queue
        if len(queue) + len(records) > self._max_queue:
            return False
        queue.extend(records)
        self.stats.enqueued += len(records)
        if len(queue) >= self._batch_size:
            self._wake.set()
        return True

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything queued so far is written; False on timeout."""
        deadline = time.monotonic() + timeout_s
        self._wake.set()
        with self._idle:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None or not self._thread.is_alive():
                    return not self._queue and not self._busy
                self._idle.wait(min(left, 0.05))
                self._wake.set()
        return True

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Flush, stop the thread, and count whatever could not be written as dropped."""
        self.flush(timeout_s)
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        left = len(self._queue)
        if left:
            self.stats.dropped += left
            self._queue.clear()
            log.error("trace writer stopped with %d traces unwritten; they are lost", left)

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self._interval)
            self._wake.clear()
            while self._queue and not self._stopping:
                self._write_batch(self._take_batch())
            self._report_drops()
            with self._idle:
                self._idle.notify_all()

    def _take_batch(self) -> list[TraceRecord]:
        queue = self._queue
        batch = []
        with self._idle:
            self._busy = True
        for _ in range(min(self._batch_size, len(queue))):
            batch.append(queue.popleft())
        return batch

    def _write_batch(self, batch: list[TraceRecord]) -> None:
        for record in batch:
            self._prepare(record)
        delay = 0.1
        try:
            while True:
                try:
                    self._sink.write(batch)
                    self.stats.written += len(batch)
                    return
                except Exception as exc:  # the store may be down: keep serving, retry
                    self.stats.failed_writes += 1
                    log.warning(
                        "writing %d traces failed (%s); retrying in %.1f s", len(batch), exc, delay
                    )
                    if self._stopping:
                        self.stats.dropped += len(batch)
                        return
                    time.sleep(delay)
                    delay = min(delay * 2, self._max_backoff_s)
        finally:
            with self._idle:
                self._busy = False

    def _prepare(self, record: TraceRecord) -> None:
        try:
            record.settle()
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
                self._max_queue,
            )
            self._reported_drops = dropped

    def _after_fork(self) -> None:
        if self._thread is None:
            return
        self._thread = None
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._busy = False
        self.start()
