"""The seam human review keeps its queues, tasks and scores behind.

Layer 2 implements it on SQLite and PostgreSQL (`controltower.store.SqlEvalStore`) and in
memory (`InMemoryEvalStore`); `EvalStore` includes it, so whatever gives the eval store
(`ObservabilityStore.eval_store()`) gives the review queues too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from controltower.domain.review import (
    HumanScore,
    ReviewItem,
    ReviewProgress,
    ReviewQueue,
    ReviewTask,
    TaskStatus,
)


@runtime_checkable
class ReviewStore(Protocol):
    """Review queues, their tasks, and the scores reviewers give.

    Errors: NotFound for an unknown queue or task; InvalidRequest for a bad name or
    rubric, a duplicate queue name, scores that do not fit the rubric, or a task that is
    not the reviewer's to score (assigned to, or open by, someone else; done already).
    """

    def create_queue(self, queue: ReviewQueue) -> None:
        """Store a new queue (its name is unique)."""
        ...

    def list_queues(self, project: str | None = None) -> list[ReviewQueue]:
        """Queues, newest first."""
        ...

    def get_queue(self, ref: str) -> ReviewQueue:
        """A queue by id or by name."""
        ...

    def add_tasks(self, queue_id: str, items: Sequence[ReviewItem]) -> int:
        """Add a task per item, after the queue's last; an item already there is skipped.
        The number of tasks added."""
        ...

    def list_tasks(
        self,
        queue_id: str,
        *,
        status: TaskStatus | None = None,
        limit: int = 500,
        offset: int = 0,
    ) -> list[ReviewTask]:
        """A queue's tasks in order (of one status)."""
        ...

    def get_task(self, task_id: int) -> ReviewTask:
        """One task."""
        ...

    def claim(self, task_id: int, reviewer: str) -> bool:
        """Open a pending task for the reviewer, unless it is assigned to or open by someone
        else; whether the reviewer has it now. Atomic: two reviewers never both get it."""
        ...

    def next_task(self, queue_id: str, reviewer: str) -> ReviewTask | None:
        """The reviewer's next task, claimed: the one they have open, else the first one
        assigned to them, else the first one assigned to no one and open by no one."""
        ...

    def assign(self, queue_id: str, task_ids: Sequence[int], assignee: str | None) -> int:
        """Assign pending tasks to a reviewer (None: to no one); how many were."""
        ...

    def submit_score(
        self, task_id: int, reviewer: str, values: Mapping[str, Any], comment: str | None = None
    ) -> HumanScore:
        """Score a task on every criterion and mark it done (the same reviewer may score it
        again, which replaces the score)."""
        ...

    def skip(self, task_id: int, reviewer: str) -> ReviewTask:
        """Mark a pending task skipped."""
        ...

    def reopen(self, task_id: int) -> ReviewTask:
        """Put a skipped task back in the queue (pending, nobody's); a scored one is refused."""
        ...

    def task_score(self, task_id: int) -> HumanScore | None:
        """The score of a task, if it has one."""
        ...

    def queue_progress(self, queue_id: str) -> ReviewProgress:
        """Tasks done, skipped and left, and each reviewer's count."""
        ...

    def human_scores(
        self, *, run_id: str | None = None, queue_id: str | None = None
    ) -> list[HumanScore]:
        """The scores given to a run's results (in any queue), or in one queue."""
        ...
