"""The bounded queue between callers that must never wait and one thread that drains it in
batches: the gateway's trace writer and the SDK's exporter both stand on it.

`put` runs on the caller's thread and does almost nothing: a length check and a deque
append (atomic under the GIL, so no lock). The draining thread `wait`s for a full batch or
the flush interval, `take`s batches and marks each `done`; `flush` waits for that.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class BatchQueue(Generic[T]):
    """At most `max_items` waiting; what does not fit is refused (the caller counts it)."""

    def __init__(self, max_items: int, batch_size: int) -> None:
        self.max_items = max_items
        self.batch_size = batch_size
        self._items: deque[T] = deque()
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._busy = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> bool:
        """Queue one item; False when the queue is full."""
        items = self._items
        if len(items) >= self.max_items:
            return False
        items.append(item)
        if len(items) == self.batch_size:
            self._wake.set()
        return True

    def offer(self, batch: list[T]) -> bool:
        """Queue a batch whole, or none of it (and count nothing) when there is no room:
        for callers that can push back instead of losing data."""
        items = self._items
        if len(items) + len(batch) > self.max_items:
            return False
        items.extend(batch)
        if len(items) >= self.batch_size:
            self._wake.set()
        return True

    def wake(self) -> None:
        """Have the draining thread look now rather than at the end of its interval."""
        self._wake.set()

    def wait(self, interval_s: float) -> None:
        """In the draining thread: wait for a full batch, a wake, or the interval."""
        self._wake.wait(interval_s)
        self._wake.clear()

    def take(self) -> list[T]:
        """In the draining thread: the next batch (marked busy until `done`)."""
        with self._idle:
            self._busy = True
        items = self._items
        return [items.popleft() for _ in range(min(self.batch_size, len(items)))]

    def done(self) -> None:
        """In the draining thread: the batch taken last is handled; wake `flush` callers."""
        with self._idle:
            self._busy = False
            self._idle.notify_all()

    def clear(self) -> int:
        """Empty the queue; how many items were left in it."""
        left = len(self._items)
        self._items.clear()
        return left

    def flush(self, timeout_s: float, draining: Callable[[], bool]) -> bool:
        """Wait until every item queued so far is handled; False on timeout, or when the
        draining thread is gone (`draining()` is False) with items left."""
        deadline = time.monotonic() + timeout_s
        self._wake.set()
        with self._idle:
            while self._items or self._busy:
                left = deadline - time.monotonic()
                if left <= 0 or not draining():
                    return not self._items and not self._busy
                self._idle.wait(min(left, 0.05))
                self._wake.set()
        return True
