"""The one periodic background worker: a daemon thread that runs a task every `interval_s`
seconds (or at once when woken), outlives the task's failures, stops on request, and runs
again in a forked child, where the parent's thread did not survive the fork.

The gateway's prompt refresher, the retention sweeper and the SDK's prompt cache use it.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("controltower.periodic")

# os.register_at_fork hooks cannot be removed: one hook serves every worker alive
_WORKERS: weakref.WeakSet[PeriodicWorker] = weakref.WeakSet()
_registry = threading.Lock()
_hooked = False


@dataclass(slots=True)
class _Run:
    """One started thread with its own signals, so a late thread never sees a new run's."""

    stop: threading.Event = field(default_factory=threading.Event)
    wake: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


class PeriodicWorker:
    """Calls `task` in a daemon thread every `interval_s` seconds; a task that raises is
    logged and called again at the next period. `after_fork` runs in a forked child
    (to reset locks and connections the task uses) before the worker starts there again."""

    def __init__(
        self,
        task: Callable[[], object],
        interval_s: float,
        *,
        name: str,
        run_first: bool = False,
        after_fork: Callable[[], object] | None = None,
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be greater than 0, not {interval_s}")
        self.interval_s = interval_s
        self.name = name
        self._task = task
        self._run_first = run_first  # call the task as soon as the thread starts
        self._after_fork = after_fork
        self._lock = threading.Lock()
        self._run: _Run | None = None
        _track(self)

    @property
    def running(self) -> bool:
        """Whether the worker was started and not stopped since."""
        return self._run is not None

    def start(self) -> None:
        """Start the thread (a no-op when it runs already)."""
        with self._lock:
            if self._run is None:
                self._run = self._spawn()

    def wake(self) -> None:
        """Run the task now rather than at the end of the period (when running)."""
        run = self._run
        if run is not None:
            run.wake.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop after the task under way, if any, waiting at most `timeout_s` for it."""
        with self._lock:
            run, self._run = self._run, None
        if run is None:
            return
        run.stop.set()
        run.wake.set()
        if run.thread is not None and run.thread is not threading.current_thread():
            run.thread.join(timeout_s)

    def _spawn(self) -> _Run:
        run = _Run()
        run.thread = threading.Thread(target=self._loop, args=(run,), name=self.name, daemon=True)
        run.thread.start()
        return run

    def _loop(self, run: _Run) -> None:
        if self._run_first:
            self._call()
        while True:
            run.wake.wait(self.interval_s)
            run.wake.clear()
            if run.stop.is_set():
                return
            self._call()

    def _call(self) -> None:
        try:
            self._task()
        except Exception:  # a store or a server may be down: try again next period
            log.exception("%s failed; trying again in %g s", self.name, self.interval_s)

    def _restart_in_child(self) -> None:
        self._lock = threading.Lock()  # another thread may have held it at the fork
        if self._after_fork is not None:
            try:
                self._after_fork()
            except Exception:
                log.exception("%s: resetting after fork failed", self.name)
        if self._run is not None:
            self._run = self._spawn()


def _track(worker: PeriodicWorker) -> None:
    global _hooked
    with _registry:
        _WORKERS.add(worker)
        if not _hooked and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_restart_in_child)
            _hooked = True


def _restart_in_child() -> None:
    global _registry
    _registry = threading.Lock()
    for worker in list(_WORKERS):
        worker._restart_in_child()
