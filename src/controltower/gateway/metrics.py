"""The gateway's Prometheus metrics, counted off the request path.

Every call through the gateway becomes a trace record; the trace writer's thread hands
each one here once it is priced (`observe`), so that a call pays nothing for its
metrics and its cost is known when it is counted. The writer's own counters are copied
in after each of its passes (`sync_writer`).

Under `controltower serve --workers N` the CLI sets `PROMETHEUS_MULTIPROC_DIR` before
the workers start: each worker writes its values to files there, and a scrape of any
worker reads them all (prometheus-client's multi-process mode), so one scrape sees the
whole server. A record the writer had to drop (its queue full) is not counted here; the
dropped counter says how many.

Model labels are the configured aliases only: a request for an alias that does not
exist counts under `(unknown)`, so no client can grow the label space.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from controltower.domain import TraceRecord

if TYPE_CHECKING:
    from controltower.gateway.instruments import Instruments

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNKNOWN = "(unknown)"


class GatewayMetrics:
    """The metrics of one gateway process; the instruments are made on first use (by the
    trace writer's thread, or the first scrape), not at start-up."""

    def __init__(self, aliases: Iterable[str]) -> None:
        self.aliases = frozenset(aliases)
        self._made: Instruments | None = None
        self._lock = threading.Lock()

    def observe(self, record: TraceRecord) -> None:
        """Count one priced gateway call (in the trace writer's thread)."""
        if record.gateway_call:
            self._instruments().observe(record)

    def sync_writer(self, stats: Any, queue_depth: int) -> None:
        """Copy the trace writer's counters in (what they grew by since the last copy)."""
        self._instruments().sync_writer(stats, queue_depth)

    def render(self) -> bytes:
        """The exposition text: this process's metrics, or every worker's."""
        return self._instruments().render()

    def close(self) -> None:
        """This process is ending: its live gauges stop counting (multi-process mode)."""
        if self._made is not None:
            self._made.close()

    def _instruments(self) -> Instruments:
        made = self._made
        if made is None:
            with self._lock:
                if self._made is None:
                    from controltower.gateway.instruments import Instruments

                    self._made = Instruments(self.aliases)
                made = self._made
        return made
