"""The in-memory EvalStore: the fake of the SQL one that tests and demos use."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from controltower.domain.dataset import (
    DatasetItem,
    DatasetVersion,
    check_dataset_name,
    check_reference,
    check_tag,
    items_hash,
    merged_items,
)
from controltower.domain.evaluation import EvalResult, EvalRun, RunStatus
from controltower.domain.ids import now_us
from controltower.errors import InvalidRequest, NotFound
from controltower.store.datasets import check_item_ids
from controltower.store.memory_reviews import InMemoryReviewStore

MAX_RUNS = 1000


class InMemoryEvalStore(InMemoryReviewStore):
    """Datasets, runs, results and the cache in dicts, behind one lock (review queues
    behind their own)."""

    inline_reads = True

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._versions: dict[str, list[tuple[DatasetVersion, list[DatasetItem]]]] = {}
        self._tags: dict[str, dict[str, int]] = {}
        self._runs: dict[str, EvalRun] = {}
        self._results: dict[str, dict[tuple[str, int], EvalResult]] = {}
        self._cache: dict[str, Any] = {}

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
        check_dataset_name(name)
        check_item_ids(items)
        digest = items_hash(items)
        with self._lock:
            versions = self._versions.setdefault(name, [])
            if versions and versions[-1][0].hash == digest:
                return self._tagged(versions[-1][0]), False
            made = DatasetVersion(
                name, len(versions) + 1, digest, len(items), now_us(), (), message, project
            )
            versions.append((made, list(items)))
            return made, True

    def extend_dataset(
        self,
        name: str,
        items: Sequence[DatasetItem],
        *,
        message: str | None = None,
        author: str | None = None,
        project: str = "default",
    ) -> tuple[DatasetVersion, int]:
        """Add the items whose ids are new as a new version, read and written under the
        store's lock; (version, how many items were new)."""
        check_dataset_name(name)
        with self._lock:
            versions = self._versions.get(name, [])
            existing = versions[-1][1] if versions else []
            combined = merged_items(existing, items)
            new = len(combined) - len(existing)
            if versions and not new:
                return self._tagged(versions[-1][0]), 0
            check_item_ids(combined)
            made = DatasetVersion(
                name,
                len(versions) + 1,
                items_hash(combined),
                len(combined),
                now_us(),
                (),
                message,
                project,
            )
            self._versions.setdefault(name, versions).append((made, combined))
            return made, new

    def dataset_version(
        self,
        name: str,
        *,
        version: int | None = None,
        tag: str | None = None,
        as_of_us: int | None = None,
    ) -> DatasetVersion:
        """A version by number, by tag, or the newest one made at or before a time."""
        check_reference(version, tag, as_of_us)
        with self._lock:
            versions = self._dataset(name)
            if tag is not None:
                if tag not in self._tags.get(name, {}):
                    raise NotFound(f"dataset {name!r} has no tag {tag!r}", param="tag")
                version = self._tags[name][tag]
            elif as_of_us is not None:
                made = [v for v, _ in versions if v.created_us <= as_of_us]
                if not made:
                    raise NotFound(f"dataset {name!r} had no version at that time", param="as_of")
                version = made[-1].version
            return self._tagged(self._one(name, versions, version)[0])

    def dataset_items(self, name: str, version: int) -> list[DatasetItem]:
        """The items of one version, in the order they were pushed."""
        with self._lock:
            return list(self._one(name, self._dataset(name), version)[1])

    def list_datasets(self, project: str | None = None) -> list[DatasetVersion]:
        """Every dataset's newest version, by name."""
        with self._lock:
            newest = [versions[-1][0] for _, versions in sorted(self._versions.items())]
            return [self._tagged(v) for v in newest if project in (None, v.project)]

    def list_dataset_versions(self, name: str) -> list[DatasetVersion]:
        """A dataset's versions, newest first, with their tags."""
        with self._lock:
            return [self._tagged(v) for v, _ in reversed(self._dataset(name))]

    def tag_dataset(self, name: str, tag: str, version: int) -> DatasetVersion:
        """Point a tag at a version (moving it if it pointed elsewhere)."""
        check_tag(tag)
        with self._lock:
            made = self._one(name, self._dataset(name), version)[0]
            self._tags.setdefault(name, {})[tag] = version
            return self._tagged(made)

    def create_run(self, run: EvalRun) -> None:
        """Store a new run (its record, parameters and fingerprint)."""
        with self._lock:
            if run.id in self._runs:
                raise InvalidRequest(f"eval run {run.id!r} exists", param="run")
            self._runs[run.id] = replace(run)

    def finish_run(self, run_id: str, status: RunStatus, summary: dict[str, Any]) -> None:
        """Set a run's status and summary (and its end time unless it is running again)."""
        with self._lock:
            run = self._run(run_id)
            run.status, run.summary = status, dict(summary)
            run.finished_us = None if status == "running" else now_us()

    def get_run(self, run_id: str) -> EvalRun:
        """One run; NotFound if there is none."""
        with self._lock:
            return replace(self._run(run_id))

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
        with self._lock:
            runs = [
                replace(r)
                for r in self._runs.values()
                if name in (None, r.name)
                and branch in (None, r.branch)
                and status in (None, r.status)
                and (before is None or (r.created_us, r.id) < before)
            ]
        runs.sort(key=lambda r: (r.created_us, r.id), reverse=True)
        return runs[: max(1, min(limit, MAX_RUNS))]

    def write_results(self, results: Sequence[EvalResult]) -> None:
        """Store results; one that exists (same run, item and repeat) is replaced."""
        with self._lock:
            for result in results:
                stored = replace(result, created_us=result.created_us or now_us())
                self._results.setdefault(result.run_id, {})[result.key] = stored

    def run_results(self, run_id: str) -> list[EvalResult]:
        """A run's results, by item and repeat."""
        with self._lock:
            found = self._results.get(run_id, {})
            return [replace(found[key]) for key in sorted(found)]

    def run_result(self, run_id: str, item_id: str, repeat: int) -> EvalResult | None:
        """One result of a run (an item's repeat), or None when it has none."""
        with self._lock:
            found = self._results.get(run_id, {}).get((item_id, repeat))
            return None if found is None else replace(found)

    def cache_get(self, keys: Sequence[str]) -> dict[str, Any]:
        """The cached values of those keys that have one."""
        with self._lock:
            return {key: self._cache[key] for key in keys if key in self._cache}

    def cache_put(self, entries: dict[str, Any]) -> None:
        """Cache values by key (a key that exists keeps its first value)."""
        with self._lock:
            for key, value in entries.items():
                self._cache.setdefault(key, value)

    def _dataset(self, name: str) -> list[tuple[DatasetVersion, list[DatasetItem]]]:
        versions = self._versions.get(name)
        if not versions:
            raise NotFound(f"no dataset {name!r}", param="name")
        return versions

    def _one(
        self,
        name: str,
        versions: list[tuple[DatasetVersion, list[DatasetItem]]],
        version: int | None,
    ) -> tuple[DatasetVersion, list[DatasetItem]]:
        if version is None:
            return versions[-1]
        if not 1 <= version <= len(versions):
            raise NotFound(f"dataset {name!r} has no version {version}", param="version")
        return versions[version - 1]

    def _tagged(self, version: DatasetVersion) -> DatasetVersion:
        tags = self._tags.get(version.dataset, {})
        return replace(
            version, tags=tuple(sorted(t for t, v in tags.items() if v == version.version))
        )

    def _run(self, run_id: str) -> EvalRun:
        run = self._runs.get(run_id)
        if run is None:
            raise NotFound(f"no eval run {run_id!r}", param="run")
        return run
