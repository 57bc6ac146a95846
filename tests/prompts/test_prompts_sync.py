"""push_dir and pull_dir: the Git workflow round trip against the in-memory store."""

from __future__ import annotations

from pathlib import Path

import pytest

from controltower.domain.prompt import PromptContent
from controltower.errors import ConfigError
from controltower.prompts import InMemoryPromptStore, ProtectedLabel, pull_dir, push_dir

FILES = {
    "refund-policy.yaml": "# the refund bot\nname: refund-policy\nmodel: fast\n"
    "variables:\n  question: {type: string, required: true}\n"
    'messages:\n  - role: user\n    content: "{{ question }}"   # quoted\n',
    "support/greeting.yml": "name: support/greeting\r\ntext: Hello!\r\n",
}


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode())


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_push_is_idempotent_and_pull_reproduces_the_files(tmp_path: Path) -> None:
    store = InMemoryPromptStore()
    src = tmp_path / "src"
    write(src, {**FILES, ".hidden/x.yaml": "junk: [", "notes.txt": "not a prompt"})
    first = push_dir(store, src, message="first", author="ann")
    assert [(p.name, p.version, p.created) for p in first] == [
        ("refund-policy", 1, True),
        ("support/greeting", 1, True),
    ]
    assert [p.created for p in push_dir(store, src)] == [False, False]
    (src / "support/greeting.yml").write_bytes(b"name: support/greeting\r\ntext: Hi!\r\n")
    second = push_dir(store, src, label="staging", message="shorter")
    assert [(p.version, p.created, p.label_moved) for p in second] == [
        (1, False, True),
        (2, True, True),
    ]
    assert store.get_version("support/greeting", label="staging").message == "shorter"
    assert not any(p.label_moved for p in push_dir(store, src, label="staging"))

    out = tmp_path / "out"
    (out / "support").mkdir(parents=True)
    (out / "support/greeting.yml").write_bytes(b"old")
    pulled = pull_dir(store, out)
    assert [(p.name, p.version) for p in pulled] == [("refund-policy", 1), ("support/greeting", 2)]
    src_files = {k: v for k, v in tree(src).items() if not k.startswith((".", "notes"))}
    assert tree(out) == src_files


def test_pull_by_label_skips_prompts_without_it(tmp_path: Path) -> None:
    store = InMemoryPromptStore()
    write(tmp_path / "src", FILES)
    push_dir(store, tmp_path / "src")
    store.move_label("refund-policy", "prod", 1, actor=None)
    pulled = pull_dir(store, tmp_path / "out", label="prod")
    assert [(p.name, p.path is None) for p in pulled] == [
        ("refund-policy", False),
        ("support/greeting", True),
    ]


def test_a_version_without_source_is_pulled_as_yaml(tmp_path: Path) -> None:
    store = InMemoryPromptStore()
    store.create_version("api", PromptContent(text="made\nby the API\n"), message=None, author=None)
    pull_dir(store, tmp_path)
    assert (tmp_path / "api.yaml").read_text() == "name: api\ntext: |\n  made\n  by the API\n"
    assert [p.created for p in push_dir(store, tmp_path)] == [False]


def test_a_bad_file_stops_the_whole_push(tmp_path: Path) -> None:
    store = InMemoryPromptStore()
    write(tmp_path, {**FILES, "bad.yaml": "name: bad\ntext: ok\nextra: 1\n"})
    with pytest.raises(ConfigError) as caught:
        push_dir(store, tmp_path)
    assert caught.value.problems == [
        f"{tmp_path / 'bad.yaml'}:3 extra: unknown field; fix: remove it, or check its "
        "spelling (allowed: name, model, params, variables, messages, text)"
    ]
    assert store.list_prompts() == []


def test_two_files_for_one_name_are_refused(tmp_path: Path) -> None:
    write(tmp_path, {"a.yaml": "name: a\ntext: x\n", "a.yml": "name: a\ntext: y\n"})
    with pytest.raises(ConfigError, match="`a` is also in"):
        push_dir(InMemoryPromptStore(), tmp_path)


def test_push_to_a_protected_label_needs_force(tmp_path: Path) -> None:
    store = InMemoryPromptStore()
    write(tmp_path, {"a.yaml": "name: a\ntext: x\n"})
    push_dir(store, tmp_path, label="prod")
    store.move_label("a", "prod", 1, actor=None, protect=True)
    write(tmp_path, {"a.yaml": "name: a\ntext: y\n"})
    with pytest.raises(ProtectedLabel):
        push_dir(store, tmp_path, label="prod")
    assert len(store.list_versions("a")) == 1  # refused before anything was written
    assert push_dir(store, tmp_path, label="prod", force=True)[0].label_moved
