"""The PromptStore behaviour, the same on the in-memory fake, SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from controltower.domain.prompt import (
    LATEST,
    PromptContent,
    SplitArm,
    VariableSpec,
)
from controltower.errors import InvalidRequest, NotFound
from controltower.prompts.errors import ProtectedLabel
from controltower.prompts.memory import InMemoryPromptStore
from controltower.prompts.store import PromptStore
from controltower.store import SqlPromptStore, open_prompt_store


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> Iterator[PromptStore]:
    """Each prompt store in turn: the in-memory fake, SQLite and PostgreSQL."""
    if request.param == "memory":
        yield InMemoryPromptStore()
        return
    made = open_prompt_store(request.getfixturevalue(f"{request.param}_url"))
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sql_store(request: pytest.FixtureRequest) -> Iterator[SqlPromptStore]:
    """The SQL prompt store on SQLite and on PostgreSQL."""
    made = open_prompt_store(request.getfixturevalue(f"{request.param}_url"))
    try:
        yield made
    finally:
        made.close()


def chat(text: str = "Answer {{ question }}", **params: object) -> PromptContent:
    """Chat content with one required variable."""
    return PromptContent(
        messages=({"role": "system", "content": "Be brief."}, {"role": "user", "content": text}),
        model="fast",
        params=dict(params),
        variables={"question": VariableSpec(type="string", required=True)},
    )


def push(store: PromptStore, name: str, text: str) -> int:
    """Create a version of `name` with `text`; its number."""
    made, _ = store.create_version(name, chat(text), message=None, author="ann")
    return made.version


# -- versions ---------------------------------------------------------------------------


def test_versions_are_numbered_and_keep_what_was_pushed(store: PromptStore) -> None:
    content = PromptContent(
        text="Hello {{ name }}",
        model="fast",
        params={"temperature": 0.2, "response_format": {"type": "json_object"}},
        variables={
            "name": VariableSpec(type="string", required=True, description="who"),
            "tier": VariableSpec(type="string", enum=("free", "pro"), default="free"),
        },
    )
    first, created = store.create_version(
        "support/greet", content, message="first", author="ann", source="name: x\n# kept\n"
    )
    assert created and first.version == 1
    found = store.get_version("support/greet", version=1)
    assert found == first
    assert found.content == content
    assert (found.message, found.author, found.source) == ("first", "ann", "name: x\n# kept\n")
    second, created = store.create_version("support/greet", chat(), message=None, author=None)
    assert created and second.version == 2
    assert [v.version for v in store.list_versions("support/greet")] == [2, 1]


def test_pushing_the_newest_content_again_creates_nothing(store: PromptStore) -> None:
    push(store, "faq", "one")
    again, created = store.create_version("faq", chat("one"), message="again", author="bob")
    assert not created
    assert again.version == 1 and again.message is None
    assert [e.action for e in store.audit_events("faq")] == ["prompt.create_version"]


def test_content_equal_to_an_older_version_is_a_new_version(store: PromptStore) -> None:
    assert [push(store, "faq", text) for text in ("a", "b", "a")] == [1, 2, 3]
    assert store.get_version("faq").content_hash == store.get_version("faq", version=1).content_hash


def test_changed_params_make_a_new_version(store: PromptStore) -> None:
    store.create_version("faq", chat(temperature=0.1), message=None, author=None)
    made, created = store.create_version("faq", chat(temperature=0.2), message=None, author=None)
    assert created and made.version == 2


def test_invalid_names_and_content_are_refused(store: PromptStore) -> None:
    with pytest.raises(InvalidRequest):
        store.create_version("Bad Name", chat(), message=None, author=None)
    with pytest.raises(InvalidRequest):
        store.create_version("faq", PromptContent(text="a", messages=()), message=None, author=None)


def test_unknown_prompt_version_and_label_are_not_found(store: PromptStore) -> None:
    push(store, "faq", "a")
    with pytest.raises(NotFound, match="nope"):
        store.get_version("nope")
    with pytest.raises(NotFound, match="version 9"):
        store.get_version("faq", version=9)
    with pytest.raises(NotFound, match="production"):
        store.get_version("faq", label="production")
    with pytest.raises(NotFound):
        store.list_versions("nope")
    with pytest.raises(NotFound):
        store.labels("nope")
    with pytest.raises(NotFound):
        store.label_history("nope")
    with pytest.raises(InvalidRequest):
        store.get_version("faq", version=1, label="production")


def test_list_prompts_gives_each_newest_version_and_labels(store: PromptStore) -> None:
    push(store, "b", "one")
    push(store, "a", "one")
    push(store, "a", "two")
    store.move_label("a", "production", 1, actor=None)
    listed = store.list_prompts()
    assert [(v.name, v.version) for v, _ in listed] == [("a", 2), ("b", 1)]
    assert [(lb.label, lb.version) for lb in listed[0][1]] == [(LATEST, 2), ("production", 1)]
    assert [lb.label for lb in listed[1][1]] == [LATEST]


# -- labels -----------------------------------------------------------------------------


def test_labels_move_and_latest_follows_the_newest(store: PromptStore) -> None:
    push(store, "faq", "a")
    push(store, "faq", "b")
    created = store.move_label("faq", "production", 1, actor="ann")
    assert (created.action, created.version, created.previous_version) == ("create", 1, None)
    moved = store.move_label("faq", "production", 2, actor="bob")
    assert (moved.action, moved.version, moved.previous_version) == ("move", 2, 1)
    assert store.get_version("faq", label="production").version == 2
    push(store, "faq", "c")
    assert store.get_version("faq").version == 3
    assert {lb.label: lb.version for lb in store.labels("faq")} == {LATEST: 3, "production": 2}
    history = store.label_history("faq", "production")
    assert [(m.version, m.previous_version, m.actor) for m in history] == [
        (2, 1, "bob"),
        (1, None, "ann"),
    ]


def test_latest_and_bad_label_names_cannot_be_moved(store: PromptStore) -> None:
    push(store, "faq", "a")
    for label in (LATEST, "Prod", "a" * 65, ""):
        with pytest.raises(InvalidRequest):
            store.move_label("faq", label, 1, actor=None)
    with pytest.raises(InvalidRequest):
        store.split_label("faq", LATEST, [SplitArm(1, 1)], actor=None)


def test_a_label_cannot_point_at_a_missing_version(store: PromptStore) -> None:
    push(store, "faq", "a")
    with pytest.raises(NotFound):
        store.move_label("faq", "production", 2, actor=None)
    with pytest.raises(NotFound):
        store.move_label("nope", "production", 1, actor=None)
    assert [lb.label for lb in store.labels("faq")] == [LATEST]


def test_a_protected_label_moves_only_with_force(store: PromptStore) -> None:
    for text in ("a", "b", "c"):
        push(store, "faq", text)
    store.move_label("faq", "production", 1, actor="ann", protect=True)
    with pytest.raises(ProtectedLabel) as refused:
        store.move_label("faq", "production", 2, actor="bob")
    assert refused.value.status == 409
    with pytest.raises(ProtectedLabel):
        store.move_label("faq", "production", 1, actor="bob", protect=False)
    with pytest.raises(ProtectedLabel):
        store.split_label("faq", "production", [SplitArm(1, 1), SplitArm(2, 1)], actor=None)
    assert store.get_version("faq", label="production").version == 1
    store.move_label("faq", "production", 2, actor="bob", force=True)
    label = next(lb for lb in store.labels("faq") if lb.label == "production")
    assert (label.version, label.protected) == (2, True)
    store.move_label("faq", "production", 2, actor="bob", force=True, protect=False)
    store.move_label("faq", "production", 3, actor="bob")
    assert store.get_version("faq", label="production").version == 3


def test_protecting_in_place_keeps_the_history_and_is_audited(store: PromptStore) -> None:
    push(store, "faq", "a")
    store.move_label("faq", "production", 1, actor="ann")
    same = store.move_label("faq", "production", 1, actor="ann", protect=True)
    assert same.version == 1
    assert len(store.label_history("faq", "production")) == 1
    events = store.audit_events("faq@production")
    assert [e.action for e in events] == ["label.protect", "label.move"]
    assert (events[0].before, events[0].after) == ({"protected": False}, {"protected": True})


def test_a_split_label_reports_its_heaviest_arm(store: PromptStore) -> None:
    for text in ("a", "b", "c"):
        push(store, "faq", text)
    store.move_label("faq", "production", 1, actor=None)
    arms = [SplitArm(2, 10), SplitArm(3, 90)]
    move = store.split_label("faq", "production", arms, actor="ann")
    assert (move.action, move.version, move.previous_version) == ("split", 3, 1)
    assert move.split == tuple(arms)
    label = next(lb for lb in store.labels("faq") if lb.label == "production")
    assert (label.version, label.split) == (3, tuple(arms))
    assert store.get_version("faq", label="production").version == 3
    assert store.label_history("faq", "production")[0].split == tuple(arms)
    store.move_label("faq", "production", 3, actor=None)  # a plain move ends the split
    assert next(lb for lb in store.labels("faq") if lb.label == "production").split == ()


def test_bad_splits_are_refused(store: PromptStore) -> None:
    push(store, "faq", "a")
    push(store, "faq", "b")
    with pytest.raises(InvalidRequest):
        store.split_label("faq", "production", [SplitArm(1, 100)], actor=None)
    with pytest.raises(InvalidRequest):
        store.split_label("faq", "production", [SplitArm(1, 1), SplitArm(2, 0)], actor=None)
    with pytest.raises(NotFound):
        store.split_label("faq", "production", [SplitArm(1, 1), SplitArm(7, 1)], actor=None)


def test_rollback_returns_to_the_version_before_the_last_move(store: PromptStore) -> None:
    for text in ("a", "b", "c"):
        push(store, "faq", text)
    store.move_label("faq", "production", 1, actor=None)
    store.move_label("faq", "production", 3, actor=None)
    back = store.rollback("faq", "production", actor="ann")
    assert (back.action, back.version, back.previous_version) == ("rollback", 1, 3)
    assert store.get_version("faq", label="production").version == 1
    assert [m.action for m in store.label_history("faq", "production")] == [
        "rollback",
        "move",
        "create",
    ]


def test_rollback_of_a_split_goes_back_to_a_single_version(store: PromptStore) -> None:
    push(store, "faq", "a")
    push(store, "faq", "b")
    store.move_label("faq", "production", 1, actor=None)
    store.split_label("faq", "production", [SplitArm(1, 50), SplitArm(2, 60)], actor=None)
    store.rollback("faq", "production", actor=None)
    label = next(lb for lb in store.labels("faq") if lb.label == "production")
    assert (label.version, label.split) == (1, ())


def test_rollback_needs_an_earlier_version_and_force_when_protected(store: PromptStore) -> None:
    push(store, "faq", "a")
    push(store, "faq", "b")
    with pytest.raises(NotFound):
        store.rollback("faq", "production", actor=None)
    store.move_label("faq", "production", 1, actor=None)
    with pytest.raises(InvalidRequest, match="no earlier version"):
        store.rollback("faq", "production", actor=None)
    store.move_label("faq", "production", 2, actor=None, protect=True)
    with pytest.raises(ProtectedLabel):
        store.rollback("faq", "production", actor=None)
    assert store.rollback("faq", "production", actor=None, force=True).version == 1


# -- audit ------------------------------------------------------------------------------


def test_every_change_is_audited_newest_first(store: PromptStore) -> None:
    push(store, "faq", "a")
    push(store, "faq", "b")
    store.move_label("faq", "production", 1, actor="ann")
    store.split_label("faq", "production", [SplitArm(1, 1), SplitArm(2, 3)], actor="bob")
    store.rollback("faq", "production", actor="cy")
    push(store, "other", "a")
    events = store.audit_events("faq")
    assert [(e.action, e.target, e.actor) for e in events] == [
        ("label.rollback", "faq@production", "cy"),
        ("label.split", "faq@production", "bob"),
        ("label.move", "faq@production", "ann"),
        ("prompt.create_version", "faq", "ann"),
        ("prompt.create_version", "faq", "ann"),
    ]
    assert events[-1].before is None and events[-1].after is not None
    assert events[-1].after["version"] == 1
    assert events[-2].before == {"version": 1}
    assert events[2].before is None
    assert events[2].after == {"version": 1, "split": [], "protected": False}
    assert events[0].before is not None and events[0].before["version"] == 2
    assert events[0].after == {"version": 1, "split": [], "protected": False}
    assert len({e.id for e in events}) == 5
    assert all(e.at_us > 0 for e in events)
    assert len(store.audit_events()) == 6
    assert len(store.audit_events(limit=2)) == 2
    assert [e.target for e in store.audit_events("other")] == ["other"]


def test_audit_of_a_prompt_does_not_match_look_alike_names(store: PromptStore) -> None:
    push(store, "a_b", "x")
    push(store, "axb", "x")
    store.move_label("axb", "prod", 1, actor=None)
    store.move_label("a_b", "prod", 1, actor=None)
    assert {e.target for e in store.audit_events("a_b")} == {"a_b", "a_b@prod"}
    assert [e.target for e in store.audit_events("axb@prod")] == ["axb@prod"]


# -- SQL only ---------------------------------------------------------------------------


def test_concurrent_pushes_get_distinct_numbers(sql_store: SqlPromptStore) -> None:
    workers, each = 6, 4
    errors: list[BaseException] = []
    start = threading.Barrier(workers)

    def pushes(worker: int) -> None:
        start.wait()
        try:
            for i in range(each):
                push(sql_store, "busy", f"worker {worker} push {i}")
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=pushes, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    versions = sql_store.list_versions("busy")
    assert [v.version for v in versions] == list(range(workers * each, 0, -1))
    assert len({v.content_hash for v in versions}) == workers * each
    assert sql_store.get_version("busy").version == workers * each


def test_a_store_reopened_sees_what_was_written(sqlite_url: str) -> None:
    first = open_prompt_store(sqlite_url)
    try:
        push(first, "faq", "a")
        first.move_label("faq", "production", 1, actor=None, protect=True)
    finally:
        first.close()
    second = open_prompt_store(sqlite_url)
    try:
        label = next(lb for lb in second.labels("faq") if lb.label == "production")
        assert label.protected and label.version == 1
        assert second.get_version("faq").content == chat("a")
    finally:
        second.close()
