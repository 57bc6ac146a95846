"""Review queues behave the same in memory, on SQLite and on PostgreSQL: tasks in order,
claims that two reviewers never share, assignment, scores checked against the rubric."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from controltower.domain.review import (
    CLAIM_TTL_US,
    Criterion,
    QueueSource,
    ReviewItem,
    ReviewQueue,
)
from controltower.errors import InvalidRequest, NotFound
from controltower.evals.review_store import ReviewStore

RUBRIC = (
    Criterion("correct", instructions="Does it give the refund window?"),
    Criterion("helpful", "1-5", ("useless", "poor", "fair", "good", "great")),
)


@pytest.fixture
def store(eval_store: Any) -> Any:
    """An empty review store of each kind (the eval store, which includes it)."""
    return eval_store


def queue(name: str = "refunds", created_us: int = 1) -> ReviewQueue:
    source = QueueSource(run_id="run_1", failed_only=True)
    return ReviewQueue(f"rq_{name}", name, RUBRIC, source, created_us, "ana")


def items(n: int, run: str = "run_1") -> list[ReviewItem]:
    return [ReviewItem(run, f"i{k}", 0) for k in range(n)]


def test_every_store_is_a_review_store(store: Any) -> None:
    assert isinstance(store, ReviewStore)


def test_queues_round_trip_by_id_and_name(store: Any) -> None:
    store.create_queue(queue("refunds", 1))
    traces = QueueSource(trace_filter={"since": "7d", "status": "error"}, limit=50)
    store.create_queue(ReviewQueue("rq_2", "errors", RUBRIC[:1], traces, 2, None, "shop"))
    found = store.get_queue("refunds")
    assert found == queue("refunds", 1) == store.get_queue("rq_refunds")
    assert found.rubric[1].choices()[0] == (1.0, "useless")
    assert store.get_queue("errors").source.trace_filter == {"since": "7d", "status": "error"}
    assert [q.name for q in store.list_queues()] == ["errors", "refunds"]
    assert [q.name for q in store.list_queues(project="shop")] == ["errors"]
    with pytest.raises(InvalidRequest, match="named 'refunds' exists"):
        store.create_queue(queue("refunds", 3))
    with pytest.raises(NotFound, match="no review queue 'nope'"):
        store.get_queue("nope")


def test_tasks_keep_their_order_and_duplicates_are_skipped(store: Any) -> None:
    store.create_queue(queue())
    assert store.add_tasks("rq_refunds", items(3)) == 3
    more = [*items(4), ReviewItem(trace_id="ab" * 16)]
    assert store.add_tasks("refunds", more) == 2  # by name too; i0-i2 are there already
    tasks = store.list_tasks("rq_refunds")
    assert [t.position for t in tasks] == [1, 2, 3, 4, 5]
    assert [t.item for t in tasks] == [*items(4), ReviewItem(trace_id="ab" * 16)]
    assert all(t.status == "pending" and t.assignee is None for t in tasks)
    assert store.get_task(tasks[4].id) == tasks[4]
    assert [t.position for t in store.list_tasks("rq_refunds", limit=2, offset=1)] == [2, 3]
    with pytest.raises(NotFound):
        store.add_tasks("nope", items(1))
    with pytest.raises(NotFound, match="no review task"):
        store.get_task(10_000)


def test_next_task_claims_and_scoring_moves_on(store: Any) -> None:
    store.create_queue(queue())
    store.add_tasks("rq_refunds", items(3))
    first = store.next_task("rq_refunds", "ana")
    assert first.position == 1 and first.claimed_by == "ana"
    assert store.next_task("rq_refunds", "ana").id == first.id  # the one she has open
    assert store.next_task("rq_refunds", "bo").position == 2  # not ana's
    score = store.submit_score(first.id, "ana", {"correct": "pass", "helpful": "4"}, " ok ")
    assert score.values == {"correct": 1.0, "helpful": 4.0} and score.comment == "ok"
    assert score.item == ReviewItem("run_1", "i0", 0)
    assert store.get_task(first.id).status == "done"
    assert store.next_task("rq_refunds", "ana").position == 3
    assert store.next_task("rq_refunds", "cy") is None  # 2 is bo's, 3 is ana's
    progress = store.queue_progress("rq_refunds")
    assert (progress.total, progress.done, progress.skipped, progress.left) == (3, 1, 0, 2)
    assert progress.in_review == 2 and progress.reviewers == {"ana": 1}
    assert progress.percent == 33


def test_scores_must_fit_the_rubric(store: Any) -> None:
    store.create_queue(queue())
    store.add_tasks("rq_refunds", items(1))
    task = store.next_task("rq_refunds", "ana")
    cases = [
        ({"correct": "pass"}, "missing: helpful"),
        ({"correct": "maybe", "helpful": 3}, "'maybe' is not pass or fail"),
        ({"correct": True, "helpful": 6}, "not a point of its scale 1-5"),
        ({"correct": 1, "helpful": 2, "tone": 1}, "no criterion 'tone'"),
    ]
    for values, message in cases:
        with pytest.raises(InvalidRequest, match=message):
            store.submit_score(task.id, "ana", values)
    with pytest.raises(InvalidRequest, match="at most 10000 characters"):
        store.submit_score(task.id, "ana", {"correct": 1, "helpful": 2}, "x" * 10_001)
    assert store.get_task(task.id).status == "pending"
    assert store.task_score(task.id) is None


def test_only_the_reviewer_who_has_a_task_may_finish_it(store: Any) -> None:
    store.create_queue(queue())
    store.add_tasks("rq_refunds", items(2))
    task = store.next_task("rq_refunds", "ana")
    values = {"correct": "fail", "helpful": 1}
    with pytest.raises(InvalidRequest, match="ana is reviewing task"):
        store.submit_score(task.id, "bo", values)
    with pytest.raises(InvalidRequest, match="ana is reviewing task"):
        store.skip(task.id, "bo")
    assert not store.claim(task.id, "bo")
    store.submit_score(task.id, "ana", values)
    with pytest.raises(InvalidRequest, match="was scored by ana"):
        store.submit_score(task.id, "bo", values)
    # ana may correct her own score: it is replaced
    again = store.submit_score(task.id, "ana", {"correct": "pass", "helpful": 5}, "fixed")
    assert store.task_score(task.id) == again
    assert len(store.human_scores(queue_id="rq_refunds")) == 1
    with pytest.raises(InvalidRequest, match="is scored already"):
        store.skip(task.id, "ana")
    other = store.list_tasks("rq_refunds")[1]
    assert store.skip(other.id, "bo").status == "skipped"
    with pytest.raises(InvalidRequest, match="was skipped by bo"):
        store.submit_score(other.id, "ana", values)
    assert store.next_task("rq_refunds", "ana") is None
    # a skipped task put back in the queue is anyone's again; a scored one is not reopened
    reopened = store.reopen(other.id)
    assert (reopened.status, reopened.reviewer, reopened.done_us) == ("pending", None, None)
    assert store.next_task("rq_refunds", "ana").id == other.id  # type: ignore[union-attr]
    with pytest.raises(InvalidRequest, match="score it again"):
        store.reopen(task.id)


def test_assignment_reserves_tasks(store: Any) -> None:
    store.create_queue(queue())
    store.add_tasks("rq_refunds", items(4))
    ids = [t.id for t in store.list_tasks("rq_refunds")]
    opened = store.next_task("rq_refunds", "cy")  # cy has task 1 open ...
    assert store.assign("rq_refunds", [ids[0], ids[2]], "bo") == 2  # ... until bo gets it
    tasks = store.list_tasks("rq_refunds")
    assert [t.assignee for t in tasks] == ["bo", None, "bo", None]
    assert tasks[0].claimed_by is None and opened.id == ids[0]
    assert store.next_task("rq_refunds", "ana").position == 2  # 1 and 3 are bo's
    assert store.next_task("rq_refunds", "bo").position == 1  # his own first
    with pytest.raises(InvalidRequest, match="assigned to bo"):
        store.submit_score(ids[2], "ana", {"correct": 1, "helpful": 1})
    assert store.queue_progress("rq_refunds").assigned == 2
    assert store.assign("rq_refunds", [ids[2]], None) == 1  # unassigned again
    assert store.list_tasks("rq_refunds")[2].assignee is None
    store.skip(ids[3], "ana")
    assert store.assign("rq_refunds", [ids[3]], "bo") == 0  # only pending tasks
    with pytest.raises(InvalidRequest, match="reviewer's name"):
        store.assign("rq_refunds", ids, " ")


def test_a_lapsed_claim_goes_back_to_the_others(store: Any, monkeypatch: Any) -> None:
    store.create_queue(queue())
    store.add_tasks("rq_refunds", items(1))
    task = store.next_task("rq_refunds", "ana")
    assert store.next_task("rq_refunds", "bo") is None
    later = task.claimed_us + CLAIM_TTL_US + 1
    for module in ("controltower.store.reviews", "controltower.store.memory_reviews"):
        monkeypatch.setattr(f"{module}.now_us", lambda: later)
    assert store.next_task("rq_refunds", "bo").id == task.id


def test_human_scores_by_run_and_by_queue(store: Any) -> None:
    store.create_queue(queue("a", 1))
    store.create_queue(queue("b", 2))
    store.add_tasks("rq_a", [*items(2), *items(1, "run_2")])
    store.add_tasks("rq_b", items(1))
    for name, reviewer in (("rq_a", "ana"), ("rq_a", "ana"), ("rq_a", "ana"), ("rq_b", "bo")):
        task = store.next_task(name, reviewer)
        store.submit_score(task.id, reviewer, {"correct": 1, "helpful": 3})
    by_run = store.human_scores(run_id="run_1")
    assert [(s.queue_id, s.item.item_id, s.reviewer) for s in by_run] == [
        ("rq_a", "i0", "ana"),
        ("rq_a", "i1", "ana"),
        ("rq_b", "i0", "bo"),
    ]
    assert [s.item.run_id for s in store.human_scores(queue_id="rq_a")] == [
        "run_1",
        "run_1",
        "run_2",
    ]
    assert store.human_scores(run_id="run_1", queue_id="rq_b")[0].reviewer == "bo"
    with pytest.raises(InvalidRequest):
        store.human_scores()


def test_two_reviewers_claiming_at_once_never_get_the_same_task(store: Any) -> None:
    store.create_queue(queue())
    store.add_tasks("rq_refunds", items(40))
    got: dict[str, list[int]] = {"ana": [], "bo": [], "cy": [], "di": []}
    start = threading.Barrier(len(got))
    errors: list[BaseException] = []

    def review(name: str) -> None:
        try:
            start.wait()
            while (task := store.next_task("rq_refunds", name)) is not None:
                got[name].append(task.id)
                store.submit_score(task.id, name, {"correct": 1, "helpful": 2})
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=review, args=(name,)) for name in got]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    claimed = [task_id for ids in got.values() for task_id in ids]
    assert len(claimed) == len(set(claimed)) == 40
    assert store.queue_progress("rq_refunds").done == 40
    assert sum(store.queue_progress("rq_refunds").reviewers.values()) == 40


def test_concurrent_claims_of_one_task_have_one_winner(store: Any) -> None:
    store.create_queue(queue())
    store.add_tasks("rq_refunds", items(1))
    task_id = store.list_tasks("rq_refunds")[0].id
    names = [f"r{k}" for k in range(8)]
    start = threading.Barrier(len(names))
    won: list[str] = []

    def claim(name: str) -> None:
        start.wait()
        if store.claim(task_id, name):
            won.append(name)

    threads = [threading.Thread(target=claim, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(won) == 1 and store.get_task(task_id).claimed_by == won[0]


def test_concurrent_adds_get_distinct_positions(store: Any) -> None:
    store.create_queue(queue())
    start = threading.Barrier(4)

    def add(k: int) -> None:
        start.wait()
        store.add_tasks("rq_refunds", [ReviewItem("run_1", f"t{k}-{n}", 0) for n in range(25)])

    threads = [threading.Thread(target=add, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    positions = [t.position for t in store.list_tasks("rq_refunds")]
    assert positions == list(range(1, 101))
