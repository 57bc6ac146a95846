"""The seams the harness keeps its data behind: datasets, runs and results, the call cache,
human review (`controltower.evals.review_store`).

Layer 2 implements them on SQLite and PostgreSQL (`controltower.store`), and the package
ships in-memory fakes (`controltower.store.InMemoryStore.eval_store()`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from controltower.domain.dataset import DatasetItem, DatasetVersion
from controltower.domain.evaluation import EvalResult, EvalRun, RunStatus
from controltower.evals.review_store import ReviewStore


@runtime_checkable
class DatasetStore(Protocol):
    """Versioned datasets. Versions never change; tags point at versions and may move.
    Errors: controltower.errors.NotFound for an unknown dataset, version or tag;
    InvalidRequest for a bad name, tag or item."""

    def push_dataset(
        self,
        name: str,
        items: Sequence[DatasetItem],
        *,
        message: str | None = None,
        author: str | None = None,
        project: str = "default",
    ) -> tuple[DatasetVersion, bool]:
        """Add a version unless the newest one has the same content; (version, created)."""
        ...

    def extend_dataset(
        self,
        name: str,
        items: Sequence[DatasetItem],
        *,
        message: str | None = None,
        author: str | None = None,
        project: str = "default",
    ) -> tuple[DatasetVersion, int]:
        """Add the items whose ids are new to the newest version, as a new version read and
        written under the dataset's lock (so concurrent adds all land; an id that is there
        keeps its item); (the new version, or the newest one when nothing was new, and how
        many items were new). A dataset that is not there is made."""
        ...

    def dataset_version(
        self,
        name: str,
        *,
        version: int | None = None,
        tag: str | None = None,
        as_of_us: int | None = None,
    ) -> DatasetVersion:
        """A version by number, by tag, or the newest one made at or before a time."""
        ...

    def dataset_items(self, name: str, version: int) -> list[DatasetItem]:
        """The items of one version, in the order they were pushed."""
        ...

    def list_datasets(self, project: str | None = None) -> list[DatasetVersion]:
        """Every dataset's newest version, by name."""
        ...

    def list_dataset_versions(self, name: str) -> list[DatasetVersion]:
        """A dataset's versions, newest first, with their tags."""
        ...

    def tag_dataset(self, name: str, tag: str, version: int) -> DatasetVersion:
        """Point a tag at a version (moving it if it pointed elsewhere)."""
        ...


@runtime_checkable
class EvalStore(DatasetStore, ReviewStore, Protocol):
    """Eval runs and their results, the cache of model calls made by evals, and the human
    review queues (`ReviewStore`).

    `inline_reads` says a cache read is a lookup in memory or in a local file (a few
    µs on SQLite, through a connection of its own), cheap enough to make on the event
    loop: the runner then skips the hop to a thread, whose wait for the GIL costs more
    than the read itself.
    """

    inline_reads: bool

    def create_run(self, run: EvalRun) -> None:
        """Store a new run (its record, parameters and fingerprint)."""
        ...

    def finish_run(self, run_id: str, status: RunStatus, summary: dict[str, Any]) -> None:
        """Set a run's status and summary (and its end time unless it is running again)."""
        ...

    def get_run(self, run_id: str) -> EvalRun:
        """One run; NotFound if there is none."""
        ...

    def list_runs(
        self,
        *,
        name: str | None = None,
        branch: str | None = None,
        status: RunStatus | None = None,
        before: tuple[int, str] | None = None,
        limit: int = 100,
    ) -> list[EvalRun]:
        """Runs, newest first (of one eval, of one branch, in one status); `before` is a
        (created_us, id) cursor: only the runs older than that one (the next page)."""
        ...

    def write_results(self, results: Sequence[EvalResult]) -> None:
        """Store results; one that exists (same run, item and repeat) is replaced."""
        ...

    def run_results(self, run_id: str) -> list[EvalResult]:
        """A run's results, by item and repeat."""
        ...

    def run_result(self, run_id: str, item_id: str, repeat: int) -> EvalResult | None:
        """One result of a run (an item's repeat), or None when it has none."""
        ...

    def cache_get(self, keys: Sequence[str]) -> dict[str, Any]:
        """The cached values of those keys that have one."""
        ...

    def cache_put(self, entries: dict[str, Any]) -> None:
        """Cache values by key (a key that exists keeps its first value)."""
        ...
