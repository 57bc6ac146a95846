"""The SQL review store: queues, tasks claimed by conditional updates, scores per task.

Two reviewers asking for their next task at once must never get the same one. A claim is
one `UPDATE ... WHERE id = :id AND <still free>`: the database lets one of two concurrent
updates of a row through and re-checks the condition for the other (PostgreSQL re-reads
the row after the first commits; SQLite runs writers one at a time), which then updates
no row and tries the next candidate. Scoring and skipping are guarded the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from controltower.domain.ids import now_us
from controltower.domain.review import (
    CLAIM_TTL_US,
    HumanScore,
    QueueSource,
    ReviewItem,
    ReviewProgress,
    ReviewQueue,
    ReviewTask,
    TaskStatus,
    check_reviewer,
    check_scores,
    rubric_from_json,
)
from controltower.errors import InvalidRequest, NotFound
from controltower.store.schema import store_tables

_CHUNK = 500
_CANDIDATES = 10  # free tasks read per try of a claim
MAX_TASKS_LISTED = 5000


class SqlReviewStore:
    """The ReviewStore on SQLite or PostgreSQL (SqlEvalStore includes it)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        tables = store_tables()
        self._queues = tables["review_queues"]
        self._tasks = tables["review_tasks"]
        self._scores = tables["review_scores"]

    def create_queue(self, queue: ReviewQueue) -> None:
        """Store a new queue (its name is unique)."""
        q = self._queues
        with self._engine.begin() as conn:
            taken = conn.execute(sa.select(q.c.id).where(q.c.name == queue.name)).first()
            if taken is not None:
                raise _name_taken(queue.name)
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            insert = dialect.insert(q).values(_queue_row(queue)).on_conflict_do_nothing()
            if conn.execute(insert).rowcount == 0:  # made at the same moment elsewhere
                raise _name_taken(queue.name)

    def list_queues(self, project: str | None = None) -> list[ReviewQueue]:
        """Queues, newest first."""
        q = self._queues
        query = sa.select(q).order_by(q.c.created_us.desc(), q.c.id.desc())
        if project is not None:
            query = query.where(q.c.project == project)
        with self._engine.connect() as conn:
            return [_queue_of(row) for row in conn.execute(query)]

    def get_queue(self, ref: str) -> ReviewQueue:
        """A queue by id or by name."""
        with self._engine.connect() as conn:
            return self._queue(conn, ref)

    def add_tasks(self, queue_id: str, items: Sequence[ReviewItem]) -> int:
        """Add a task per item, after the queue's last; an item already there is skipped."""
        t, at_us = self._tasks, now_us()
        dialect = postgresql if self._engine.dialect.name == "postgresql" else sqlite
        with self._engine.begin() as conn:
            queue_id = self._lock_queue(conn, queue_id)
            mine = t.c.queue_id == queue_id
            keys = set(conn.execute(sa.select(t.c.item_key).where(mine)).scalars())
            last = conn.execute(sa.select(sa.func.max(t.c.position)).where(mine)).scalar() or 0
            rows: list[dict[str, Any]] = []
            for item in items:
                if item.key not in keys:
                    keys.add(item.key)
                    rows.append(_task_row(queue_id, last + len(rows) + 1, item, at_us))
            for start in range(0, len(rows), _CHUNK):
                conn.execute(dialect.insert(t), rows[start : start + _CHUNK])
        return len(rows)

    def list_tasks(
        self,
        queue_id: str,
        *,
        status: TaskStatus | None = None,
        limit: int = 500,
        offset: int = 0,
    ) -> list[ReviewTask]:
        """A queue's tasks in order (of one status)."""
        t = self._tasks
        query = sa.select(t).order_by(t.c.position)
        if status is not None:
            query = query.where(t.c.status == status)
        query = query.limit(max(1, min(limit, MAX_TASKS_LISTED))).offset(max(0, offset))
        with self._engine.connect() as conn:
            queue = self._queue(conn, queue_id)
            query = query.where(t.c.queue_id == queue.id)
            return [_task_of(row) for row in conn.execute(query)]

    def get_task(self, task_id: int) -> ReviewTask:
        """One task."""
        with self._engine.connect() as conn:
            return _task_of(self._task_row(conn, task_id))

    def claim(self, task_id: int, reviewer: str) -> bool:
        """Open a pending task for the reviewer unless someone else has it; whether they do."""
        reviewer = check_reviewer(reviewer)
        t, at_us = self._tasks, now_us()
        with self._engine.begin() as conn:
            self._task_row(conn, task_id)
            done = conn.execute(
                sa.update(t)
                .where(t.c.id == task_id, self._free(reviewer, at_us))
                .values(claimed_by=reviewer, claimed_us=at_us)
            )
        return bool(done.rowcount)

    def next_task(self, queue_id: str, reviewer: str) -> ReviewTask | None:
        """The reviewer's next task, claimed (theirs open, assigned to them, or anyone's)."""
        reviewer = check_reviewer(reviewer)
        t = self._tasks
        with self._engine.connect() as conn:
            queue = self._queue(conn, queue_id)
        mine_first = sa.case(
            (t.c.claimed_by == reviewer, 0), (t.c.assignee == reviewer, 1), else_=2
        )
        while True:
            query = (
                sa.select(t.c.id)
                .where(t.c.queue_id == queue.id, self._free(reviewer, now_us()))
                .order_by(mine_first, t.c.position)
                .limit(_CANDIDATES)
            )
            with self._engine.connect() as conn:
                candidates = list(conn.execute(query).scalars())
            if not candidates:
                return None
            # each lost race means another reviewer took that task: the loop ends
            for task_id in candidates:
                if self.claim(task_id, reviewer):
                    return self.get_task(task_id)

    def assign(self, queue_id: str, task_ids: Sequence[int], assignee: str | None) -> int:
        """Assign pending tasks to a reviewer (None: to no one); how many were."""
        name = None if assignee is None else check_reviewer(assignee)
        t, count = self._tasks, 0
        with self._engine.begin() as conn:
            queue = self._queue(conn, queue_id)
            ids = list(task_ids)
            for start in range(0, len(ids), _CHUNK):
                chosen = sa.and_(
                    t.c.queue_id == queue.id,
                    t.c.id.in_(ids[start : start + _CHUNK]),
                    t.c.status == "pending",
                )
                count += conn.execute(sa.update(t).where(chosen).values(assignee=name)).rowcount
                # a claim of someone else ends: the task is now the assignee's
                others = t.c.claimed_by.is_not(None) if name is None else t.c.claimed_by != name
                conn.execute(
                    sa.update(t).where(chosen, others).values(claimed_by=None, claimed_us=None)
                )
        return count

    def submit_score(
        self, task_id: int, reviewer: str, values: Mapping[str, Any], comment: str | None = None
    ) -> HumanScore:
        """Score a task on every criterion and mark it done (again by the same reviewer)."""
        reviewer = check_reviewer(reviewer)
        at_us = now_us()
        with self._engine.begin() as conn:
            row = self._task_row(conn, task_id)
            queue = self._queue(conn, row.queue_id)
            checked, text = check_scores(queue.rubric, values, comment)
            self._finish(conn, row, reviewer, "done", at_us)
            score = HumanScore(task_id, queue.id, _item_of(row), reviewer, checked, text, at_us)
            self._upsert_score(conn, score)
        return score

    def skip(self, task_id: int, reviewer: str) -> ReviewTask:
        """Mark a pending task skipped."""
        reviewer = check_reviewer(reviewer)
        with self._engine.begin() as conn:
            row = self._task_row(conn, task_id)
            if row.status == "done":
                raise InvalidRequest(f"task {task_id} is scored already", param="task")
            self._finish(conn, row, reviewer, "skipped", now_us())
        return self.get_task(task_id)

    def reopen(self, task_id: int) -> ReviewTask:
        """Put a skipped task back in the queue (pending, nobody's); a scored one is refused."""
        t = self._tasks
        with self._engine.begin() as conn:
            row = self._task_row(conn, task_id)
            if row.status == "done":
                raise InvalidRequest(
                    f"task {task_id} is scored; score it again to change the score", param="task"
                )
            conn.execute(
                sa.update(t)
                .where(t.c.id == task_id, t.c.status == "skipped")
                .values(status="pending", reviewer=None, done_us=None)
            )
        return self.get_task(task_id)

    def task_score(self, task_id: int) -> HumanScore | None:
        """The score of a task, if it has one."""
        found = self._read_scores(self._scores.c.task_id == task_id)
        return found[0] if found else None

    def queue_progress(self, queue_id: str) -> ReviewProgress:
        """Tasks done, skipped and left, and each reviewer's count."""
        t, at_us = self._tasks, now_us()
        with self._engine.connect() as conn:
            mine = t.c.queue_id == self._queue(conn, queue_id).id
            left = sa.and_(mine, t.c.status == "pending")
            live = t.c.claimed_us >= at_us - CLAIM_TTL_US
            counts = sa.select(t.c.status, sa.func.count()).where(mine).group_by(t.c.status)
            by_reviewer = (
                sa.select(t.c.reviewer, sa.func.count())
                .where(mine, t.c.status == "done")
                .group_by(t.c.reviewer)
                .order_by(t.c.reviewer)
            )
            status = {row[0]: int(row[1]) for row in conn.execute(counts)}
            open_now = conn.execute(sa.select(sa.func.count()).where(left, live)).scalar_one()
            assigned = conn.execute(
                sa.select(sa.func.count()).where(left, t.c.assignee.is_not(None))
            ).scalar_one()
            reviewers = {str(row[0]): int(row[1]) for row in conn.execute(by_reviewer)}
        return ReviewProgress(
            total=sum(status.values()),
            done=status.get("done", 0),
            skipped=status.get("skipped", 0),
            in_review=int(open_now),
            assigned=int(assigned),
            reviewers=reviewers,
        )

    def human_scores(
        self, *, run_id: str | None = None, queue_id: str | None = None
    ) -> list[HumanScore]:
        """The scores given to a run's results (in any queue), or in one queue."""
        if run_id is None and queue_id is None:
            raise InvalidRequest("ask for the scores of a run or of a queue", param="run")
        conds = []
        if run_id is not None:
            conds.append(self._tasks.c.run_id == run_id)
        if queue_id is not None:
            conds.append(self._scores.c.queue_id == queue_id)
        return self._read_scores(*conds)

    # -- helpers --------------------------------------------------------------------------

    def _free(self, reviewer: str, at_us: int) -> Any:
        """A task the reviewer may claim: pending, assigned to them or no one, open by no
        one else (or by someone whose claim lapsed)."""
        t = self._tasks
        return sa.and_(
            t.c.status == "pending",
            sa.or_(t.c.assignee.is_(None), t.c.assignee == reviewer),
            sa.or_(
                t.c.claimed_by.is_(None),
                t.c.claimed_by == reviewer,
                t.c.claimed_us < at_us - CLAIM_TTL_US,
            ),
        )

    def _finish(
        self, conn: Connection, row: Any, reviewer: str, status: TaskStatus, at_us: int
    ) -> None:
        t = self._tasks
        allowed = self._free(reviewer, at_us)
        if status == "done":  # a task may be scored again by its reviewer (a correction)
            allowed = sa.or_(allowed, sa.and_(t.c.status == "done", t.c.reviewer == reviewer))
        finished = {"status": status, "reviewer": reviewer, "done_us": at_us}
        changed = conn.execute(
            sa.update(t)
            .where(t.c.id == row.id, allowed)
            .values(**finished, claimed_by=None, claimed_us=None)
        )
        if changed.rowcount == 0:
            raise not_yours(_task_of(row), reviewer, at_us)

    def _upsert_score(self, conn: Connection, score: HumanScore) -> None:
        s = self._scores
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        row = {
            "task_id": score.task_id,
            "queue_id": score.queue_id,
            "reviewer": score.reviewer,
            "scores": score.values,
            "comment": score.comment,
            "created_us": score.created_us,
        }
        insert = dialect.insert(s).values(row)
        changed = {k: insert.excluded[k] for k in ("reviewer", "scores", "comment", "created_us")}
        conn.execute(insert.on_conflict_do_update(index_elements=[s.c.task_id], set_=changed))

    def _read_scores(self, *conds: Any) -> list[HumanScore]:
        s, t = self._scores, self._tasks
        query = (
            sa.select(s, t.c.run_id, t.c.item_id, t.c.repeat, t.c.trace_id)
            .join(t, t.c.id == s.c.task_id)
            .where(*conds)
            .order_by(s.c.queue_id, t.c.position)
        )
        with self._engine.connect() as conn:
            return [
                HumanScore(
                    row.task_id,
                    row.queue_id,
                    _item_of(row),
                    row.reviewer,
                    {str(k): float(v) for k, v in (row.scores or {}).items()},
                    row.comment,
                    row.created_us,
                )
                for row in conn.execute(query)
            ]

    def _queue(self, conn: Connection, ref: str) -> ReviewQueue:
        q = self._queues
        row = conn.execute(sa.select(q).where(sa.or_(q.c.id == ref, q.c.name == ref))).first()
        if row is None:
            raise NotFound(f"no review queue {ref!r}", param="queue")
        return _queue_of(row)

    def _lock_queue(self, conn: Connection, ref: str) -> str:
        """Lock the queue's row (tasks added at once get distinct positions); its id."""
        q = self._queues
        queue_id = self._queue(conn, ref).id
        conn.execute(sa.update(q).where(q.c.id == queue_id).values(project=q.c.project))
        return queue_id

    def _task_row(self, conn: Connection, task_id: int) -> Any:
        t = self._tasks
        row = conn.execute(sa.select(t).where(t.c.id == task_id)).first()
        if row is None:
            raise NotFound(f"no review task {task_id}", param="task")
        return row


def not_yours(task: ReviewTask, reviewer: str, at_us: int) -> InvalidRequest:
    """Why a reviewer may not score or skip a task."""
    if task.status != "pending":
        did = "scored" if task.status == "done" else "skipped"
        return InvalidRequest(f"task {task.id} was {did} by {task.reviewer}", param="task")
    if task.assignee not in (None, reviewer):
        return InvalidRequest(f"task {task.id} is assigned to {task.assignee}", param="task")
    return InvalidRequest(f"{task.claimed(at_us)} is reviewing task {task.id} now", param="task")


def _name_taken(name: str) -> InvalidRequest:
    return InvalidRequest(
        f"a review queue named {name!r} exists; choose another name", param="name"
    )


def _queue_row(queue: ReviewQueue) -> dict[str, Any]:
    return {
        "id": queue.id,
        "name": queue.name,
        "project": queue.project,
        "rubric": [c.as_json() for c in queue.rubric],
        "source": queue.source.as_json(),
        "created_us": queue.created_us,
        "created_by": queue.created_by,
    }


def _queue_of(row: Any) -> ReviewQueue:
    return ReviewQueue(
        id=row.id,
        name=row.name,
        rubric=rubric_from_json(row.rubric),
        source=QueueSource.from_json(row.source),
        created_us=row.created_us,
        created_by=row.created_by,
        project=row.project,
    )


def _task_row(queue_id: str, position: int, item: ReviewItem, at_us: int) -> dict[str, Any]:
    return {
        "queue_id": queue_id,
        "position": position,
        "item_key": item.key,
        "run_id": item.run_id,
        "item_id": item.item_id,
        "repeat": item.repeat,
        "trace_id": item.trace_id,
        "status": "pending",
        "created_us": at_us,
    }


def _item_of(row: Any) -> ReviewItem:
    if row.trace_id is not None:
        return ReviewItem(trace_id=row.trace_id)
    return ReviewItem(row.run_id, row.item_id, row.repeat)


def _task_of(row: Any) -> ReviewTask:
    return ReviewTask(
        id=row.id,
        queue_id=row.queue_id,
        position=row.position,
        item=_item_of(row),
        status=row.status,
        assignee=row.assignee,
        claimed_by=row.claimed_by,
        claimed_us=row.claimed_us,
        reviewer=row.reviewer,
        done_us=row.done_us,
        created_us=row.created_us,
    )
