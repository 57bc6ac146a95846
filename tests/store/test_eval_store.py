"""Datasets and eval runs behave the same in memory, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from controltower.domain.dataset import DatasetItem, items_hash
from controltower.domain.evaluation import EvalResult, EvalRun, Verdict
from controltower.errors import InvalidRequest, NotFound
from controltower.evals.store import EvalStore

ITEMS = [
    DatasetItem("a", "What is the refund window?", expected="30 days"),
    DatasetItem("b", variables={"order": 17}, expected={"refund": True}, metadata={"k": "v"}),
]


@pytest.fixture
def store(eval_store: Any) -> Any:
    """An empty eval store of each kind."""
    return eval_store


def test_every_store_is_an_eval_store(store: Any) -> None:
    assert isinstance(store, EvalStore)


def test_push_makes_immutable_hashed_versions(store: Any) -> None:
    first, created = store.push_dataset("refund", ITEMS, message="first")
    assert created and first.version == 1 and first.item_count == 2
    assert first.hash == items_hash(ITEMS)
    again, created = store.push_dataset("refund", list(reversed(ITEMS)))
    assert not created and again.version == 1  # the same set of items is no new version
    changed = [ITEMS[0], DatasetItem("b", variables={"order": 18})]
    second, created = store.push_dataset("refund", changed)
    assert created and second.version == 2 and second.hash != first.hash
    assert store.dataset_items("refund", 1) == ITEMS
    assert store.dataset_items("refund", 2) == changed
    assert [v.version for v in store.list_dataset_versions("refund")] == [2, 1]
    assert [d.ref for d in store.list_datasets()] == ["refund#2"]


def test_tags_and_reads_as_of_a_time(store: Any) -> None:
    store.push_dataset("refund", ITEMS)
    time.sleep(0.002)
    between = int(time.time() * 1e6)
    time.sleep(0.002)
    store.push_dataset("refund", ITEMS[:1])
    tagged = store.tag_dataset("refund", "golden-v3", 1)
    assert tagged.tags == ("golden-v3",) and tagged.version == 1
    assert store.dataset_version("refund", tag="golden-v3").version == 1
    assert store.dataset_version("refund").version == 2
    assert store.dataset_version("refund", as_of_us=between).version == 1
    store.tag_dataset("refund", "golden-v3", 2)  # a tag moves
    assert store.dataset_version("refund", tag="golden-v3").version == 2
    assert store.dataset_version("refund", version=1).tags == ()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.dataset_version("nope"), "no dataset 'nope'"),
        (lambda s: s.dataset_version("refund", version=9), "has no version 9"),
        (lambda s: s.dataset_version("refund", tag="gone"), "has no tag 'gone'"),
        (lambda s: s.dataset_version("refund", as_of_us=1), "had no version at that time"),
        (lambda s: s.dataset_items("refund", 3), "has no version 3"),
        (lambda s: s.tag_dataset("refund", "x", 5), "has no version 5"),
    ],
)
def test_unknown_things_are_not_found(store: Any, call: Any, message: str) -> None:
    store.push_dataset("refund", ITEMS)
    with pytest.raises(NotFound, match=message):
        call(store)


@pytest.mark.parametrize(
    ("name", "items", "tag", "message"),
    [
        ("Bad Name", ITEMS, None, "invalid dataset name"),
        ("ok", [ITEMS[0], ITEMS[0]], None, "item id 'a' is there twice"),
        ("ok", [DatasetItem("", "x")], None, "non-empty id"),
        ("ok", ITEMS, "12", "not only digits"),
        ("ok", ITEMS, "Has Space", "invalid tag"),
    ],
)
def test_bad_names_ids_and_tags_are_refused(
    store: Any, name: str, items: list[DatasetItem], tag: str | None, message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        store.push_dataset(name, items)
        store.tag_dataset(name, tag or "", 1)


def test_concurrent_pushes_get_distinct_versions(store: Any) -> None:
    errors: list[BaseException] = []

    def push(i: int) -> None:
        try:
            store.push_dataset("race", [DatasetItem(str(i), f"q{i}")])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=push, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(v.version for v in store.list_dataset_versions("race")) == [1, 2, 3, 4, 5, 6]


def test_runs_results_and_cache(store: Any) -> None:
    run = EvalRun("r1", "refund-policy", 1000, "fp", record={"dataset": "refund#1"})
    store.create_run(run)
    store.create_run(EvalRun("r2", "other", 2000, "fp2", branch="main"))
    verdict = Verdict(4.0, True, "polite", judge_model="gpt-x", judge_prompt_hash="abc")
    results = [
        EvalResult("r1", "a", 0, "ok", "30 days", "30 days", scores={"judge": verdict}),
        EvalResult("r1", "a", 1, "error", error="429"),
    ]
    store.write_results(results)
    store.write_results([EvalResult("r1", "a", 1, "ok", text="retried")])  # replaces
    found = store.run_results("r1")
    assert [(r.item_id, r.repeat, r.status) for r in found] == [("a", 0, "ok"), ("a", 1, "ok")]
    assert found[0].scores["judge"] == verdict and found[1].text == "retried"
    one = store.run_result("r1", "a", 1)
    assert one is not None and (one.status, one.text) == ("ok", "retried")
    assert store.run_result("r1", "a", 2) is None and store.run_result("nope", "a", 0) is None
    store.finish_run("r1", "finished", {"judge": {"mean": 4.0}})
    got = store.get_run("r1")
    assert got.status == "finished" and got.finished_us and got.summary["judge"]["mean"] == 4.0
    assert got.record == {"dataset": "refund#1"}
    assert [r.id for r in store.list_runs()] == ["r2", "r1"]
    assert [r.id for r in store.list_runs(name="refund-policy")] == ["r1"]
    assert [r.id for r in store.list_runs(branch="main")] == ["r2"]
    assert [r.id for r in store.list_runs(status="finished")] == ["r1"]
    newest = store.list_runs()[0]
    assert [r.id for r in store.list_runs(before=(newest.created_us, newest.id))] == ["r1"]
    with pytest.raises(NotFound):
        store.get_run("nope")
    store.cache_put({"k1": {"v": 1}})
    store.cache_put({"k1": {"v": 2}, "k2": [1]})
    assert store.cache_get(["k1", "k2", "k3"]) == {"k1": {"v": 1}, "k2": [1]}
    assert store.cache_get(["k2"]) == {"k2": [1]}  # one key: the runner's usual read
    assert store.cache_get(["k3"]) == {}
    assert store.cache_get([]) == {}


def test_a_large_dataset_round_trips(store: Any) -> None:
    items = [DatasetItem(f"i{n:04}", f"question {n}", expected=str(n)) for n in range(1200)]
    made, _ = store.push_dataset("big", items)
    assert store.dataset_items("big", made.version) == items
