"""The in-memory ReviewStore: the fake of the SQL one (InMemoryEvalStore includes it)."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from controltower.domain.ids import now_us
from controltower.domain.review import (
    HumanScore,
    ReviewItem,
    ReviewProgress,
    ReviewQueue,
    ReviewTask,
    TaskStatus,
    check_reviewer,
    check_scores,
)
from controltower.errors import InvalidRequest, NotFound
from controltower.store.reviews import MAX_TASKS_LISTED, not_yours


class InMemoryReviewStore:
    """Queues, tasks and scores in dicts, behind one lock (which makes claims atomic)."""

    def __init__(self) -> None:
        self._review_lock = threading.Lock()
        self._queues: dict[str, ReviewQueue] = {}
        self._tasks: dict[int, ReviewTask] = {}
        self._task_keys: dict[str, set[str]] = {}  # queue id -> item keys
        self._review_scores: dict[int, HumanScore] = {}

    def create_queue(self, queue: ReviewQueue) -> None:
        """Store a new queue (its name is unique)."""
        with self._review_lock:
            if any(q.name == queue.name for q in self._queues.values()) or (
                queue.id in self._queues
            ):
                raise InvalidRequest(
                    f"a review queue named {queue.name!r} exists; choose another name",
                    param="name",
                )
            self._queues[queue.id] = queue
            self._task_keys[queue.id] = set()

    def list_queues(self, project: str | None = None) -> list[ReviewQueue]:
        """Queues, newest first."""
        with self._review_lock:
            found = [q for q in self._queues.values() if project in (None, q.project)]
        return sorted(found, key=lambda q: (q.created_us, q.id), reverse=True)

    def get_queue(self, ref: str) -> ReviewQueue:
        """A queue by id or by name."""
        with self._review_lock:
            return self._queue(ref)

    def add_tasks(self, queue_id: str, items: Sequence[ReviewItem]) -> int:
        """Add a task per item, after the queue's last; an item already there is skipped."""
        at_us = now_us()
        with self._review_lock:
            queue = self._queue(queue_id)
            keys = self._task_keys[queue.id]
            last = max((t.position for t in self._of(queue.id)), default=0)
            added = 0
            for item in items:
                if item.key in keys:
                    continue
                keys.add(item.key)
                added += 1
                task_id = len(self._tasks) + 1
                self._tasks[task_id] = ReviewTask(
                    task_id, queue.id, last + added, item, created_us=at_us
                )
            return added

    def list_tasks(
        self,
        queue_id: str,
        *,
        status: TaskStatus | None = None,
        limit: int = 500,
        offset: int = 0,
    ) -> list[ReviewTask]:
        """A queue's tasks in order (of one status)."""
        with self._review_lock:
            found = [t for t in self._of(self._queue(queue_id).id) if status in (None, t.status)]
        start = max(0, offset)
        return found[start : start + max(1, min(limit, MAX_TASKS_LISTED))]

    def get_task(self, task_id: int) -> ReviewTask:
        """One task."""
        with self._review_lock:
            return self._task(task_id)

    def claim(self, task_id: int, reviewer: str) -> bool:
        """Open a pending task for the reviewer unless someone else has it; whether they do."""
        reviewer = check_reviewer(reviewer)
        at_us = now_us()
        with self._review_lock:
            task = self._task(task_id)
            if not _free(task, reviewer, at_us):
                return False
            self._tasks[task_id] = replace(task, claimed_by=reviewer, claimed_us=at_us)
            return True

    def next_task(self, queue_id: str, reviewer: str) -> ReviewTask | None:
        """The reviewer's next task, claimed (theirs open, assigned to them, or anyone's)."""
        reviewer = check_reviewer(reviewer)
        at_us = now_us()
        with self._review_lock:
            free = [t for t in self._of(self._queue(queue_id).id) if _free(t, reviewer, at_us)]
            if not free:
                return None
            task = min(free, key=lambda t: (_preference(t, reviewer), t.position))
            claimed = replace(task, claimed_by=reviewer, claimed_us=at_us)
            self._tasks[task.id] = claimed
            return claimed

    def assign(self, queue_id: str, task_ids: Sequence[int], assignee: str | None) -> int:
        """Assign pending tasks to a reviewer (None: to no one); how many were."""
        name = None if assignee is None else check_reviewer(assignee)
        count = 0
        with self._review_lock:
            queue = self._queue(queue_id)
            for task_id in set(task_ids):
                task = self._tasks.get(task_id)
                if task is None or task.queue_id != queue.id or task.status != "pending":
                    continue
                count += 1
                keeps_claim = task.claimed_by is not None and task.claimed_by == name
                self._tasks[task_id] = replace(
                    task,
                    assignee=name,
                    claimed_by=task.claimed_by if keeps_claim else None,
                    claimed_us=task.claimed_us if keeps_claim else None,
                )
        return count

    def submit_score(
        self, task_id: int, reviewer: str, values: Mapping[str, Any], comment: str | None = None
    ) -> HumanScore:
        """Score a task on every criterion and mark it done (again by the same reviewer)."""
        reviewer = check_reviewer(reviewer)
        at_us = now_us()
        with self._review_lock:
            task = self._task(task_id)
            checked, text = check_scores(self._queue(task.queue_id).rubric, values, comment)
            again = task.status == "done" and task.reviewer == reviewer
            if not (again or _free(task, reviewer, at_us)):
                raise not_yours(task, reviewer, at_us)
            self._finish(task, reviewer, "done", at_us)
            score = HumanScore(task_id, task.queue_id, task.item, reviewer, checked, text, at_us)
            self._review_scores[task_id] = score
            return score

    def skip(self, task_id: int, reviewer: str) -> ReviewTask:
        """Mark a pending task skipped."""
        reviewer = check_reviewer(reviewer)
        at_us = now_us()
        with self._review_lock:
            task = self._task(task_id)
            if task.status == "done":
                raise InvalidRequest(f"task {task_id} is scored already", param="task")
            if not _free(task, reviewer, at_us):
                raise not_yours(task, reviewer, at_us)
            return self._finish(task, reviewer, "skipped", at_us)

    def reopen(self, task_id: int) -> ReviewTask:
        """Put a skipped task back in the queue (pending, nobody's); a scored one is refused."""
        with self._review_lock:
            task = self._task(task_id)
            if task.status == "done":
                raise InvalidRequest(
                    f"task {task_id} is scored; score it again to change the score", param="task"
                )
            if task.status == "skipped":
                task = replace(task, status="pending", reviewer=None, done_us=None)
                self._tasks[task_id] = task
            return replace(task)

    def task_score(self, task_id: int) -> HumanScore | None:
        """The score of a task, if it has one."""
        with self._review_lock:
            return self._review_scores.get(task_id)

    def queue_progress(self, queue_id: str) -> ReviewProgress:
        """Tasks done, skipped and left, and each reviewer's count."""
        at_us = now_us()
        with self._review_lock:
            tasks = self._of(self._queue(queue_id).id)
        left = [t for t in tasks if t.status == "pending"]
        reviewers: dict[str, int] = {}
        for task in tasks:
            if task.status == "done" and task.reviewer is not None:
                reviewers[task.reviewer] = reviewers.get(task.reviewer, 0) + 1
        return ReviewProgress(
            total=len(tasks),
            done=sum(t.status == "done" for t in tasks),
            skipped=sum(t.status == "skipped" for t in tasks),
            in_review=sum(t.claimed(at_us) is not None for t in left),
            assigned=sum(t.assignee is not None for t in left),
            reviewers=dict(sorted(reviewers.items())),
        )

    def human_scores(
        self, *, run_id: str | None = None, queue_id: str | None = None
    ) -> list[HumanScore]:
        """The scores given to a run's results (in any queue), or in one queue."""
        if run_id is None and queue_id is None:
            raise InvalidRequest("ask for the scores of a run or of a queue", param="run")
        with self._review_lock:
            found = [
                (self._tasks[s.task_id].position, s)
                for s in self._review_scores.values()
                if run_id in (None, s.item.run_id) and queue_id in (None, s.queue_id)
            ]
        found.sort(key=lambda pair: (pair[1].queue_id, pair[0]))
        return [score for _, score in found]

    def _queue(self, ref: str) -> ReviewQueue:
        found = self._queues.get(ref) or next(
            (q for q in self._queues.values() if q.name == ref), None
        )
        if found is None:
            raise NotFound(f"no review queue {ref!r}", param="queue")
        return found

    def _of(self, queue_id: str) -> list[ReviewTask]:
        return sorted(
            (t for t in self._tasks.values() if t.queue_id == queue_id), key=lambda t: t.position
        )

    def _task(self, task_id: int) -> ReviewTask:
        task = self._tasks.get(task_id)
        if task is None:
            raise NotFound(f"no review task {task_id}", param="task")
        return task

    def _finish(
        self, task: ReviewTask, reviewer: str, status: TaskStatus, at_us: int
    ) -> ReviewTask:
        finished = replace(
            task, status=status, reviewer=reviewer, done_us=at_us, claimed_by=None, claimed_us=None
        )
        self._tasks[task.id] = finished
        return finished


def _free(task: ReviewTask, reviewer: str, at_us: int) -> bool:
    """Whether the reviewer may claim the task (as the SQL store's `_free` condition)."""
    return (
        task.status == "pending"
        and task.assignee in (None, reviewer)
        and task.claimed(at_us) in (None, reviewer)
    )


def _preference(task: ReviewTask, reviewer: str) -> int:
    if task.claimed_by == reviewer:
        return 0
    return 1 if task.assignee == reviewer else 2
