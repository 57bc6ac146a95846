"""The bounded queue between the application and one background export thread.

`put` runs on the caller's thread and does almost nothing (the `BatchQueue` the gateway's
trace writer stands on too). The thread does the rest: masking, JSON, batching by count,
time and bytes, gzip, HTTP (or the local store), retries.
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from controltower.tracing.batch_queue import BatchQueue

if TYPE_CHECKING:
    from controltower.sdk.encode import Chunk, Encoder
    from controltower.sdk.runtime import SdkConfig
    from controltower.sdk.transport import Transport

log = logging.getLogger("controltower.sdk")

MAX_BACKOFF_S = 30.0


@dataclass(slots=True)
class ExportStats:
    """Counts of queue items (a span, a trace update or a score) since start or fork."""

    enqueued: int = 0
    exported: int = 0
    dropped: int = 0  # the queue was full, or exporting had stopped
    failed: int = 0  # rejected by the server, or given up after retries
    queued: int = 0  # waiting in the queue now
    retries: int = 0  # sends that were retried


class Exporter:
    """`put` never blocks: when the queue is full the item is dropped and counted."""

    def __init__(self, config: SdkConfig) -> None:
        self._config = config
        self._interval = config.flush_interval_s
        self._pipeline: tuple[Encoder, Transport] | None = None
        self._thread: threading.Thread | None = None
        self._reset_state()

    def _reset_state(self) -> None:
        self._queue: BatchQueue[Any] = BatchQueue(self._config.max_queue, self._config.batch_size)
        self._abandon = threading.Event()  # set on shutdown: stop waiting to retry
        self._count_lock = threading.Lock()
        self._stopping = False
        self._taken = self._exported = self._dropped = self._failed = self._retries = 0
        self._reported_drops = 0

    def put(self, item: Any) -> bool:
        """Queue a finished span, a trace update or a score; False (counted) when full."""
        if self._queue.put(item):
            return True
        with self._count_lock:
            self._dropped += 1
        return False

    def stats(self) -> ExportStats:
        """A snapshot of the counters."""
        queued = len(self._queue)
        return ExportStats(
            enqueued=self._taken + queued,
            exported=self._exported,
            dropped=self._dropped,
            failed=self._failed,
            queued=queued,
            retries=self._retries,
        )

    def start(self) -> None:
        """Start the export thread."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._thread = threading.Thread(target=self._run, name="controltower-sdk", daemon=True)
        self._thread.start()

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything queued so far is exported (or given up); False on timeout."""
        return self._queue.flush(timeout_s, self._draining)

    def _draining(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Flush, stop the thread; what is still queued then is counted as dropped."""
        if self._thread is not None:
            self.flush(timeout_s)
        self._queue.max_items = 0  # from now on put() drops (and counts)
        self._stopping = True
        self._abandon.set()
        self._queue.wake()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)
        left = self._queue.clear()
        if left:
            self._taken += left
            with self._count_lock:
                self._dropped += left
            log.error("controltower SDK stopped with %d items unexported; they are lost", left)

    def after_fork(self) -> None:
        """In a forked child: an empty queue, fresh counters, a new thread and connection."""
        was_running = self._thread is not None and not self._stopping
        max_queue = self._queue.max_items
        if self._pipeline is not None:
            self._pipeline[1].forget()  # the parent's connection is not the child's to use
        self._pipeline = None
        self._thread = None
        self._reset_state()
        self._queue.max_items = max_queue
        if was_running:
            self.start()

    def _run(self) -> None:
        while True:
            self._queue.wait(self._interval)
            try:
                self._drain()
            except Exception:  # never let the thread die: the app keeps running
                log.exception("controltower SDK export failed")
            self._report_drops()
            if self._stopping:
                break
        if self._pipeline is not None:
            self._pipeline[1].close()

    def _drain(self) -> None:
        queue = self._queue
        while queue:
            batch = queue.take()
            self._taken += len(batch)
            try:
                self._export(batch)
            finally:
                queue.done()

    def _export(self, batch: list[Any]) -> None:
        encoder, transport = self._ensure_pipeline()
        chunks, failed = encoder.encode_batch(batch)
        self._failed += failed
        for chunk in chunks:
            self._send(transport, chunk)

    def _ensure_pipeline(self) -> tuple[Encoder, Transport]:
        if self._pipeline is None:
            # imported here, in the export thread: JSON, HTTP and (embedded) the store stay
            # out of the application's import time
            from controltower.sdk.encode import Encoder
            from controltower.sdk.transport import make_transport

            self._pipeline = (Encoder(self._config), make_transport(self._config))
        return self._pipeline

    def _send(self, transport: Transport, chunk: Chunk) -> None:
        from controltower.sdk.transport import RejectedError, RetryableError

        delay = 0.5
        for attempt in range(self._config.max_retries + 1):
            try:
                errors = transport.send(chunk.body, len(chunk.owners))
            except RetryableError as exc:
                if attempt == self._config.max_retries or self._abandon.is_set():
                    log.error("controltower export gave up on %d items: %s", chunk.items, exc)
                    break
                self._retries += 1
                backoff = delay * (0.5 + random.random())
                wait = min(backoff if exc.retry_after is None else exc.retry_after, MAX_BACKOFF_S)
                log.warning("controltower export failed (%s); retrying in %.1f s", exc, wait)
                self._abandon.wait(wait)
                delay *= 2
                continue
            except RejectedError as exc:
                log.error("controltower rejected %d items: %s", chunk.items, exc)
                break
            except Exception:
                log.exception("controltower export of %d items failed", chunk.items)
                break
            self._settle(chunk, errors)
            return
        self._failed += chunk.items

    def _settle(self, chunk: Chunk, errors: list[tuple[int, str]]) -> None:
        rejected = {chunk.owners[i] for i, _ in errors if 0 <= i < len(chunk.owners)}
        self._exported += chunk.items - len(rejected)
        self._failed += len(rejected)
        for index, message in errors[:5]:
            log.error("controltower rejected event %d of a batch: %s", index, message)

    def _report_drops(self) -> None:
        dropped = self._dropped
        if dropped > self._reported_drops:
            log.error(
                "controltower SDK queue full: %d items dropped so far (max_queue=%d)",
                dropped,
                self._config.max_queue,
            )
            self._reported_drops = dropped
