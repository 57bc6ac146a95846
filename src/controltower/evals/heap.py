"""Keeps Python's cycle collector off the objects that were alive before a run began.

A process that runs an eval holds a large heap of long-lived objects (the gateway, the
store's tables, compiled templates and schemas). Each full collection walks all of it:
on a 1,000-item run that was about a quarter of the runner's CPU, for objects that
live as long as the process. While a run goes on they are frozen (`gc.freeze`), so a
collection walks only what the run allocated; when the last concurrent run ends they
are unfrozen, and anything among them that became garbage meanwhile is collected as
usual. The young generation is also collected less often while runs go on.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_runs = 0
_saved: tuple[int, int, int] | None = None
# A young-generation collection walks the containers alive at that moment: with ~700
# allocations between them (the default) most of a run's are items still in flight,
# walked again and again. Ten times fewer collections walk about the same set each.
RUN_THRESHOLD = 7000


@contextlib.contextmanager
def older_objects_frozen() -> Iterator[None]:
    """Freeze the heap for the time of a run (runs may overlap, in threads or tasks)."""
    global _runs
    with _lock:
        if _runs == 0:
            _start()
        _runs += 1
    try:
        yield
    finally:
        with _lock:
            _runs -= 1
            if _runs == 0:
                _end()


def _start() -> None:
    global _saved
    gc.freeze()
    _saved = gc.get_threshold()
    if _saved[0] and _saved[0] < RUN_THRESHOLD:  # 0: the collector is off; leave it so
        gc.set_threshold(RUN_THRESHOLD, *_saved[1:])


def _end() -> None:
    global _saved
    if _saved is not None and gc.get_threshold()[0] == RUN_THRESHOLD:
        gc.set_threshold(*_saved)  # unless someone set other thresholds meanwhile
    _saved = None
    gc.unfreeze()
