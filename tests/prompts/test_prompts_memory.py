"""InMemoryPromptStore: versions, labels, history, rollback, protection, splits, audit."""

from __future__ import annotations

import itertools

import pytest

from controltower.domain.prompt import PromptContent, SplitArm
from controltower.errors import InvalidRequest, NotFound
from controltower.prompts import InMemoryPromptStore, PromptStore, ProtectedLabel


@pytest.fixture
def store() -> InMemoryPromptStore:
    ticks = itertools.count(1000)
    made = InMemoryPromptStore(clock=lambda: next(ticks))
    for text in ("one", "two", "three"):
        made.create_version("p", PromptContent(text=text), message=text, author="ann")
    return made


def test_it_is_a_prompt_store(store: InMemoryPromptStore) -> None:
    assert isinstance(store, PromptStore)


def test_versions_are_numbered_and_idempotent_by_content(store: InMemoryPromptStore) -> None:
    again, created = store.create_version(
        "p", PromptContent(text="three"), message=None, author=None
    )
    assert (again.version, created) == (3, False)
    back, created = store.create_version("p", PromptContent(text="one"), message="m", author="b")
    assert (back.version, created, back.message, back.author) == (4, True, "m", "b")
    assert [v.version for v in store.list_versions("p")] == [4, 3, 2, 1]
    assert store.get_version("p").version == 4
    assert store.get_version("p", version=2).content.text == "two"
    assert store.get_version("p", label="latest").version == 4


def test_bad_input_and_missing_things(store: InMemoryPromptStore) -> None:
    with pytest.raises(InvalidRequest, match="either `messages` or `text`"):
        store.create_version("q", PromptContent(), message=None, author=None)
    with pytest.raises(InvalidRequest, match="invalid prompt name"):
        store.create_version("Q", PromptContent(text="x"), message=None, author=None)
    with pytest.raises(NotFound, match="prompt `nope` not found"):
        store.get_version("nope")
    with pytest.raises(NotFound, match="no version 9"):
        store.get_version("p", version=9)
    with pytest.raises(NotFound, match="no label `prod`"):
        store.get_version("p", label="prod")
    with pytest.raises(NotFound):
        store.move_label("p", "prod", 9, actor=None)
    with pytest.raises(InvalidRequest, match="cannot be moved"):
        store.move_label("p", "latest", 1, actor=None)
    with pytest.raises(InvalidRequest, match="not both"):
        store.get_version("p", version=1, label="prod")


def test_labels_move_with_history_and_latest_follows(store: InMemoryPromptStore) -> None:
    created = store.move_label("p", "prod", 1, actor="ann")
    assert (created.action, created.version, created.previous_version) == ("create", 1, None)
    moved = store.move_label("p", "prod", 2, actor="bob")
    assert (moved.action, moved.previous_version, moved.actor) == ("move", 1, "bob")
    assert store.get_version("p", label="prod").version == 2
    assert [(lb.label, lb.version) for lb in store.labels("p")] == [("latest", 3), ("prod", 2)]
    store.move_label("p", "staging", 3, actor=None)
    assert [m.version for m in store.label_history("p", "prod")] == [2, 1]
    assert [m.label for m in store.label_history("p")] == ["staging", "prod", "prod"]
    newest, labels = store.list_prompts()[0]
    assert newest.version == 3 and [lb.label for lb in labels] == ["latest", "prod", "staging"]


def test_moving_to_the_same_version_records_nothing(store: InMemoryPromptStore) -> None:
    store.move_label("p", "prod", 1, actor=None)
    same = store.move_label("p", "prod", 1, actor=None)
    assert same.action == "create" and len(store.label_history("p", "prod")) == 1


def test_rollback_walks_back_and_twice_undoes_itself(store: InMemoryPromptStore) -> None:
    store.move_label("p", "prod", 1, actor=None)
    with pytest.raises(InvalidRequest, match="no earlier version to roll back to"):
        store.rollback("p", "prod", actor=None)
    store.move_label("p", "prod", 3, actor=None)
    back = store.rollback("p", "prod", actor="ann")
    assert (back.action, back.version, back.previous_version) == ("rollback", 1, 3)
    assert store.get_version("p", label="prod").version == 1
    assert store.rollback("p", "prod", actor=None).version == 3
    with pytest.raises(NotFound):
        store.rollback("p", "nope", actor=None)


def test_protected_labels_need_force(store: InMemoryPromptStore) -> None:
    store.move_label("p", "prod", 1, actor=None, protect=True)
    store.move_label("p", "prod", 1, actor=None, protect=True)  # no change: allowed
    for attempt in (
        lambda: store.move_label("p", "prod", 2, actor=None),
        lambda: store.move_label("p", "prod", 1, actor=None, protect=False),
        lambda: store.split_label("p", "prod", [SplitArm(1, 1), SplitArm(2, 1)], actor=None),
        lambda: store.rollback("p", "prod", actor=None),
    ):
        with pytest.raises(ProtectedLabel, match="label `prod` of `p` is protected") as caught:
            attempt()
        assert caught.value.status == 409
    store.move_label("p", "prod", 2, actor=None, force=True)
    assert store.labels("p")[1].protected  # force moves it and keeps the protection
    store.move_label("p", "prod", 2, actor=None, force=True, protect=False)
    store.move_label("p", "prod", 3, actor=None)
    assert store.get_version("p", label="prod").version == 3


def test_splits_are_stored_and_a_move_clears_them(store: InMemoryPromptStore) -> None:
    move = store.split_label("p", "prod", [SplitArm(2, 10), SplitArm(3, 90)], actor="ann")
    assert (move.action, move.version, move.split) == (
        "split",
        3,
        (SplitArm(2, 10), SplitArm(3, 90)),
    )
    label = store.labels("p")[1]
    assert label.version == 3 and label.split == move.split
    with pytest.raises(NotFound):
        store.split_label("p", "prod", [SplitArm(2, 1), SplitArm(9, 1)], actor=None)
    store.move_label("p", "prod", 3, actor=None)
    assert store.labels("p")[1].split == ()
    assert store.rollback("p", "prod", actor=None).version == 3  # the split's primary


def test_every_change_is_audited(store: InMemoryPromptStore) -> None:
    store.create_version("other", PromptContent(text="x"), message=None, author=None)
    store.move_label("p", "prod", 1, actor="ann")
    store.move_label("p", "prod", 2, actor="ann", protect=True)
    store.rollback("p", "prod", actor="bob", force=True)
    store.split_label("p", "exp", [SplitArm(1, 1), SplitArm(2, 1)], actor="cy")
    events = store.audit_events("p")
    assert [e.action for e in events] == [
        "label.split",
        "label.rollback",
        "label.protect",
        "label.move",
        "label.move",
        "prompt.create_version",
        "prompt.create_version",
        "prompt.create_version",
    ]
    rollback = events[1]
    assert (rollback.actor, rollback.target) == ("bob", "p@prod")
    assert rollback.before == {"version": 2, "split": [], "protected": True}
    assert rollback.after == {"version": 1, "split": [], "protected": True}
    assert events[-1].after is not None and events[-1].after["version"] == 1
    assert [e.target for e in store.audit_events("p@prod")] == ["p@prod"] * 4
    assert len(store.audit_events()) == 9 and len(store.audit_events(limit=2)) == 2
    assert store.audit_events("other")[0].actor is None
