"""`extend_dataset`: items added to the newest version under the dataset's lock, the same
in memory, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from controltower.domain.dataset import DatasetItem, items_hash
from controltower.errors import InvalidRequest

ITEMS = [DatasetItem("a", "q-a", expected="1"), DatasetItem("b", "q-b", expected="2")]


def test_extend_makes_the_dataset_then_adds_only_new_ids(eval_store: Any) -> None:
    first, new = eval_store.extend_dataset("grow", ITEMS, message="first", author="ana")
    assert (first.ref, first.item_count, new, first.message) == ("grow#1", 2, 2, "first")
    assert first.hash == items_hash(ITEMS)

    changed_a = DatasetItem("a", "q-a changed", expected="9")
    second, new = eval_store.extend_dataset("grow", [changed_a, DatasetItem("c", "q-c")])
    assert (second.ref, second.item_count, new) == ("grow#2", 3, 1)
    items = eval_store.dataset_items("grow", 2)
    assert [i.id for i in items] == ["a", "b", "c"]
    assert items[0] == ITEMS[0]  # an id that is there keeps its item as it is

    same, new = eval_store.extend_dataset("grow", [changed_a, ITEMS[1]], message="again")
    assert (same.ref, new, same.message) == ("grow#2", 0, None)
    assert [v.version for v in eval_store.list_dataset_versions("grow")] == [2, 1]


def test_extend_keeps_the_tags_and_dedupes_what_it_is_given(eval_store: Any) -> None:
    eval_store.push_dataset("tagged", ITEMS[:1])
    eval_store.tag_dataset("tagged", "golden", 1)
    same, new = eval_store.extend_dataset("tagged", ITEMS[:1])
    assert (same.ref, same.tags, new) == ("tagged#1", ("golden",), 0)
    twice = [ITEMS[1], DatasetItem("b", "other")]
    made, new = eval_store.extend_dataset("tagged", twice)
    assert (made.ref, made.item_count, new) == ("tagged#2", 2, 1)


def test_extend_of_nothing_makes_an_empty_first_version(eval_store: Any) -> None:
    made, new = eval_store.extend_dataset("empty", [])
    assert (made.ref, made.item_count, new) == ("empty#1", 0, 0)
    assert eval_store.extend_dataset("empty", [])[0].ref == "empty#1"


@pytest.mark.parametrize("name, items", [("Bad Name", ITEMS), ("ok", [DatasetItem("", "q")])])
def test_extend_refuses_bad_names_and_ids(eval_store: Any, name: str, items: Any) -> None:
    with pytest.raises(InvalidRequest):
        eval_store.extend_dataset(name, items)
    assert eval_store.list_datasets() == []


def test_concurrent_extends_all_land(eval_store: Any) -> None:
    count = 8
    eval_store.push_dataset("race", [DatasetItem("seed", "q")])
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def add(i: int) -> None:
        try:
            start.wait()
            eval_store.extend_dataset("race", [DatasetItem(f"item-{i}", f"q{i}")])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    newest = eval_store.dataset_version("race")
    assert newest.version == count + 1
    ids = {item.id for item in eval_store.dataset_items("race", newest.version)}
    assert ids == {"seed", *(f"item-{i}" for i in range(count))}
