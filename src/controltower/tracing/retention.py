"""Retention: traces older than their project's period are deleted, on a timer."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from controltower.domain import now_us
from controltower.tracing.periodic import PeriodicWorker

log = logging.getLogger("controltower.retention")

_DAY_US = 86_400 * 1_000_000


class DeletesOldTraces(Protocol):
    """The part of a store that retention needs."""

    def delete_before(
        self, cutoff_us: int, project: str | None = None, keep_projects: tuple[str, ...] = ()
    ) -> dict[str, int]:
        """Delete traces started before the cutoff (of one project, or of all but some)."""
        ...


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Days to keep traces: a default for every project and overrides by project name."""

    days: int | None = None
    projects: Mapping[str, int] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        """Whether anything is ever deleted."""
        return self.days is not None or bool(self.projects)

    def sweep(self, store: DeletesOldTraces, at_us: int | None = None) -> dict[str, int]:
        """Delete what is past its period now; the counts of what was deleted."""
        now = now_us() if at_us is None else at_us
        total = {"traces": 0, "spans": 0, "scores": 0}
        for project, days in self.projects.items():
            _add(total, store.delete_before(now - days * _DAY_US, project=project))
        if self.days is not None:
            keep = tuple(self.projects)
            _add(total, store.delete_before(now - self.days * _DAY_US, keep_projects=keep))
        return total


class RetentionSweeper:
    """Runs a policy's sweep in a background thread every `interval_s` seconds."""

    def __init__(self, store: DeletesOldTraces, policy: RetentionPolicy, interval_s: float):
        self._store = store
        self._policy = policy
        self._worker = PeriodicWorker(
            self._sweep, interval_s, name="controltower-retention", run_first=True
        )

    def start(self) -> None:
        """Start sweeping (a no-op when the policy keeps everything)."""
        if self._policy.active:
            self._worker.start()

    def stop(self) -> None:
        """Stop after the sweep under way, if any."""
        self._worker.stop(30)

    def _sweep(self) -> None:
        deleted = self._policy.sweep(self._store)
        if deleted["traces"]:
            log.info("retention deleted %s", deleted)


def _add(total: dict[str, int], more: Mapping[str, int]) -> None:
    for key, value in more.items():
        total[key] = total.get(key, 0) + value
