"""Making review queues: rubrics checked with clear messages, items from a run (failed,
a seeded sample) or from traces by a filter, and the trace scores reviews become."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controltower.domain.evaluation import EvalResult, EvalRun, Verdict
from controltower.domain.review import (
    Criterion,
    HumanScore,
    QueueSource,
    ReviewItem,
    check_reviewer,
    check_scores,
    rubric_from_json,
)
from controltower.errors import InvalidRequest, NotFound
from controltower.evals.review import (
    create_queue,
    export_jsonl,
    failed,
    filter_params,
    items_from_run,
    load_rubric,
    parse_rubric,
    trace_scores,
)
from controltower.store import InMemoryStore

RUBRIC = (Criterion("correct"), Criterion("tone", "1-3", ("rude", "flat", "warm")))


def result(item: str, ok: bool | None, status: str = "ok", repeat: int = 0) -> EvalResult:
    scores = {} if ok is None else {"check": Verdict.of_bool(ok)}
    return EvalResult("run_1", item, repeat, status, scores=scores)  # type: ignore[arg-type]


def stored_run(store: Any, results: list[EvalResult]) -> None:
    store.create_run(EvalRun("run_1", "refund", 1, "fp", "finished", project="shop"))
    store.write_results(results)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (None, "give a list of criteria"),
        ({"criteria": []}, "give a list of criteria"),
        ([{"scale": "1-5"}], "criteria[0]: name is missing"),
        ([{"name": "Correct"}], "criteria[0]: invalid criterion name 'Correct'"),
        ([{"name": "a", "scale": "1-11"}], "criteria[0]: criterion 'a': scale '1-11' is not a"),
        ([{"name": "a", "scale": "0-5"}], "is not a scale"),
        ([{"name": "a", "scale": 5, "labels": ["x"]}], "1 labels for a scale of 5 points"),
        ([{"name": "a", "colour": "red"}], "criteria[0]: unknown field(s) colour"),
        ([{"name": "a"}, {"name": "a"}], "criterion 'a' is there twice"),
        ([{"name": f"c{i}"} for i in range(21)], "at most 20 criteria"),
        (["correct"], "criteria[0]: a criterion is a mapping"),
    ],
)
def test_rubric_mistakes_say_where_and_what(data: Any, message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        rubric_from_json(data, "rubric.yaml")
    assert message in caught.value.message
    assert caught.value.message.startswith(("rubric.yaml", "criterion", "a rubric"))


def test_a_rubric_file(tmp_path: Path) -> None:
    path = tmp_path / "rubric.yaml"
    path.write_text(
        "criteria:\n"
        "  - {name: correct, instructions: 'Is it right?'}\n"
        "  - {name: tone, scale: 3, labels: [rude, flat, warm]}\n"
    )
    rubric = load_rubric(path)
    assert rubric == (Criterion("correct", instructions="Is it right?"), RUBRIC[1])
    assert rubric[1].choices() == [(1.0, "rude"), (2.0, "flat"), (3.0, "warm")]
    assert rubric[0].choices() == [(1.0, "pass"), (0.0, "fail")]
    with pytest.raises(InvalidRequest, match="cannot read the rubric"):
        load_rubric(tmp_path / "nope.yaml")
    with pytest.raises(InvalidRequest, match="not YAML"):
        parse_rubric("criteria: [", "x.yaml")


def test_scores_and_names_are_checked() -> None:
    assert check_scores(RUBRIC, {"correct": "p", "tone": "3"}, "  ") == (
        {"correct": 1.0, "tone": 3.0},
        None,
    )
    assert check_scores(RUBRIC, {"correct": False, "tone": 1.0})[0] == {"correct": 0, "tone": 1}
    with pytest.raises(InvalidRequest, match=r"tone: 2.5 is not a point of its scale 1-3"):
        check_scores(RUBRIC, {"correct": 1, "tone": 2.5})
    with pytest.raises(InvalidRequest, match="printable"):
        check_reviewer("a\nb")
    assert check_reviewer("  Ana Lopes ") == "Ana Lopes"
    with pytest.raises(InvalidRequest, match="run's result"):
        ReviewItem(run_id="run_1")
    with pytest.raises(InvalidRequest, match="one of them"):
        QueueSource()
    with pytest.raises(InvalidRequest, match="not traces"):
        QueueSource(trace_filter={}, failed_only=True)


def test_items_from_a_run_failed_only_and_a_seeded_sample() -> None:
    results = [
        result("c", True),
        result("a", False),
        result("b", None, "error"),
        result("a", True, repeat=1),
        result("d", None),
    ]
    assert [failed(r) for r in results] == [False, True, True, False, False]
    everything = items_from_run(results)
    assert [(i.item_id, i.repeat) for i in everything] == [
        ("a", 0),
        ("a", 1),
        ("b", 0),
        ("c", 0),
        ("d", 0),
    ]
    assert [i.item_id for i in items_from_run(results, failed_only=True)] == ["a", "b"]
    sample = items_from_run(results, sample=3, seed=11)
    assert sample == items_from_run(results, sample=3, seed=11) and len(sample) == 3
    assert sample == sorted(sample, key=lambda i: (i.item_id, i.repeat))
    assert items_from_run(results, sample=10) == everything


def test_create_queue_from_a_run_keeps_the_seed_and_the_project() -> None:
    store = InMemoryStore()
    evals = store.eval_store()
    stored_run(evals, [result(f"i{n}", n % 2 == 0) for n in range(10)])
    source = QueueSource(run_id="run_1", sample=4)
    queue, added = create_queue(evals, store, name="sampled", rubric=RUBRIC, source=source)
    assert added == 4 and queue.project == "shop" and queue.source.seed is not None
    again = QueueSource(run_id="run_1", sample=4, seed=queue.source.seed)
    _, same = create_queue(evals, store, name="again", rubric=RUBRIC, source=again)
    assert [t.item for t in evals.list_tasks("sampled")] == [
        t.item for t in evals.list_tasks("again")
    ]
    assert same == 4
    with pytest.raises(NotFound, match="no eval run 'run_2'"):
        create_queue(evals, store, name="x", rubric=RUBRIC, source=QueueSource(run_id="run_2"))
    with pytest.raises(InvalidRequest, match="invalid review queue name"):
        create_queue(evals, store, name="No", rubric=RUBRIC, source=source)
    assert [q.name for q in evals.list_queues()] == ["again", "sampled"]


def test_create_queue_from_traces_by_a_filter() -> None:
    from tests.web import data

    store = InMemoryStore()
    data.seed(store)
    evals = store.eval_store()
    params = filter_params("/traces?user=alice&name=support-agent")
    assert params == {"user": "alice", "name": "support-agent"}
    source = QueueSource(trace_filter=params, limit=2)
    queue, added = create_queue(evals, store, name="alice", rubric=RUBRIC, source=source)
    assert added == 2 and queue.source.limit == 2
    assert all(t.item.trace_id for t in evals.list_tasks(queue.id))
    with pytest.raises(InvalidRequest, match="no trace matches traces \\(user=nobody"):
        create_queue(
            evals,
            store,
            name="nobody",
            rubric=RUBRIC,
            source=QueueSource(trace_filter={"user": "nobody"}),
        )
    with pytest.raises(InvalidRequest, match="'colour' is not a trace filter"):
        filter_params("colour=red")
    with pytest.raises(InvalidRequest, match="min_cost must be a number"):
        filter_params("min_cost=cheap")


def test_export_and_trace_scores() -> None:
    from controltower.domain.review import ReviewQueue

    queue = ReviewQueue("rq_1", "q", RUBRIC, QueueSource(run_id="run_1"), 1, project="shop")
    score = HumanScore(7, "rq_1", ReviewItem("run_1", "a", 0), "ana", {"correct": 0.0, "tone": 3.0})
    (line,) = export_jsonl(queue, [score]).splitlines()
    assert b'"labels":{"correct":"fail","tone":"warm"}' in line and b'"queue":"q"' in line
    made = trace_scores(queue, score, "t" * 32)
    assert [(s.id, s.name, s.value, s.source, s.author) for s in made] == [
        ("review-7-correct", "correct", False, "human", "ana"),
        ("review-7-tone", "tone", 3.0, "human", "ana"),
    ]
    assert {s.project for s in made} == {"shop"}


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
ENTRY = st.fixed_dictionaries(
    {},
    optional={
        "name": st.text(max_size=70) | JSON,
        "scale": st.sampled_from(["pass-fail", "1-5", "1-2", "1-10", "1-11", "0-3"]) | JSON,
        "labels": st.lists(st.text(max_size=90), max_size=11) | JSON,
        "instructions": st.text(max_size=50) | JSON,
    },
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        JSON,
        st.lists(ENTRY, max_size=4),
        st.fixed_dictionaries({"criteria": st.lists(ENTRY, max_size=4)}),
    )
)
def test_any_rubric_data_is_read_or_refused_with_invalid_request(data: Any) -> None:
    try:
        rubric = rubric_from_json(data)
    except InvalidRequest as exc:
        assert exc.message
        return
    assert 1 <= len(rubric) <= 20 and len({c.name for c in rubric}) == len(rubric)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_rubric_text_is_read_or_refused_with_invalid_request(text: str) -> None:
    with contextlib.suppress(InvalidRequest):
        parse_rubric(text)


@settings(max_examples=300, deadline=None)
@given(JSON, JSON, st.text(max_size=30))
def test_any_posted_value_is_a_point_or_refused(first: Any, second: Any, query: str) -> None:
    for value in (first, second):
        for criterion in RUBRIC:
            try:
                checked = criterion.check_value(value)
            except InvalidRequest:
                continue
            assert checked in [v for v, _ in criterion.choices()]
    with contextlib.suppress(InvalidRequest):
        filter_params(query)
