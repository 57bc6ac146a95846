"""`controltower traces dead-letters`: what the store refused, for an operator to read."""

from __future__ import annotations

from pathlib import Path

import orjson

from controltower.store import open_store
from controltower.tracing import DeadLetter
from tests.cli.test_cli import run


def test_dead_letters_are_listed_newest_first(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ct.db'}"
    store = open_store(url)
    assert store.dead_letters() == []
    store.set_aside(DeadLetter("a" * 32, "ValueError: one", '{"trace": 1}', 1_700_000_000_000_000))
    store.set_aside(DeadLetter("b" * 32, "ValueError: two", '{"trace": 2}', 1_700_000_001_000_000))
    store.close()
    table = run("traces", "dead-letters", "--database-url", url)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].startswith("2023-11-14T22:13:21") and "b" * 32 in lines[0]
    assert "ValueError: one" in lines[1]
    as_json = run("traces", "dead-letters", "--json", "--limit", "1", "--database-url", url)
    [letter] = [orjson.loads(line) for line in as_json.stdout.splitlines()]
    assert letter == {
        "trace_id": "b" * 32,
        "error": "ValueError: two",
        "payload": '{"trace": 2}',
        "created_us": 1_700_000_001_000_000,
    }


def test_no_dead_letters_says_so(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ct.db'}"
    open_store(url).close()
    result = run("traces", "dead-letters", "--database-url", url)
    assert result.returncode == 0 and "every trace was stored" in result.stdout
