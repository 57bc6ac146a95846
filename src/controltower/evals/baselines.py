"""Finding the stored run an eval is compared with, and its answers by item.

A baseline reference is a run id (`run_...`), `last` (the newest finished run of the same
eval and matrix values) or `branch:NAME` (the same, on a Git branch). The gate compares a
run with it after the run; a pairwise judge reads its answers during the run.
"""

from __future__ import annotations

from controltower.domain.evaluation import EvalResult, EvalRun
from controltower.errors import NotFound
from controltower.evals.store import EvalStore


def is_stored_ref(ref: str) -> bool:
    """Whether `ref` names a stored run (not a prompt label or version to run now)."""
    return ref.startswith("run_") or ref == "last" or ref.startswith("branch:")


def stored_baseline(
    store: EvalStore, ref: str, name: str, matrix: object, exclude: str | None = None
) -> EvalRun:
    """The run `ref` names for an eval `name` with these matrix values; NotFound if none."""
    if ref.startswith("run_"):
        return store.get_run(ref)
    branch = ref.removeprefix("branch:") if ref != "last" else None
    for candidate in store.list_runs(name=name, branch=branch, limit=200):
        same = candidate.record.get("matrix") == matrix
        if candidate.id != exclude and candidate.status == "finished" and same:
            return candidate
    raise NotFound(
        f"no finished run of {name!r} to compare with for --baseline {ref}; run the "
        "eval there first (e.g. on the main branch), or pass a run id",
        param="baseline",
    )


def answers_by_item(results: list[EvalResult]) -> dict[tuple[str, int], str]:
    """The text of each answered (item, repeat) of a run."""
    return {r.key: r.text for r in results if r.status == "ok"}
