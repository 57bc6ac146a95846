"""Embedded mode: no server, the SDK writes into the local store the dashboard reads."""

from __future__ import annotations

from pathlib import Path

import pytest

import controltower as ct
from controltower.store import open_store


@ct.observe(name="embedded-root")
def root(question: str) -> str:
    with ct.span("lookup", kind="retrieval") as s:
        s.update(output=["doc-1"])
    llm(question)
    ct.update_trace(user_id="local-user", tags=["embedded"])
    return "answer"


@ct.observe(name="llm", kind="generation")
def llm(prompt: str) -> str:
    ct.update_current_span(
        model="gpt-4o-mini", provider="openai", usage={"input_tokens": 100, "output_tokens": 20}
    )
    return "answer"


def run_traced() -> str:
    @ct.observe(name="outer-holder")
    def holder() -> str | None:
        root("what is it?")
        return ct.get_current_trace_id()

    trace_id = holder()
    assert trace_id is not None
    assert ct.flush(30)
    return trace_id


def test_spans_go_into_the_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'local.db'}"
    ct.init(database_url=url, project="local-app")
    trace_id = run_traced()
    ct.score(trace_id, "thumbs", False)
    ct.shutdown(30)
    assert ct.stats().exported == 5  # 4 spans and a score
    store = open_store(url)
    try:
        trace = store.get_trace(trace_id)
    finally:
        store.close()
    assert trace is not None
    assert trace["project"] == "local-app"
    assert trace["user_id"] == "local-user"
    assert trace["tags"] == ["embedded"]
    names = {span["name"]: span for span in trace["spans"]}
    assert set(names) == {"outer-holder", "embedded-root", "lookup", "llm"}
    assert names["llm"]["cost"] is not None  # priced from the table, as at ingest
    assert trace["usage"]["total_tokens"] == 120
    assert [s["value"] for s in trace["scores"]] == [False]


def test_the_database_url_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'from-env.db'}"
    monkeypatch.setenv("CONTROLTOWER_DATABASE_URL", url)
    trace_id = run_traced()  # no init(): embedded, configured on first use
    ct.shutdown(30)
    store = open_store(url)
    try:
        assert store.get_trace(trace_id) is not None
    finally:
        store.close()


def test_the_default_is_controltower_db_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    trace_id = run_traced()
    ct.shutdown(30)
    assert (tmp_path / "controltower.db").exists()
    store = open_store("sqlite:///controltower.db")
    try:
        assert store.get_trace(trace_id) is not None
    finally:
        store.close()


def test_a_store_that_cannot_open_is_counted_not_raised(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a directory should be")
    ct.init(database_url=f"sqlite:///{blocker / 'x.db'}", max_retries=0)
    assert root("q") == "answer"
    ct.shutdown(10)
    stats = ct.stats()
    assert stats.exported == 0
    assert stats.failed + stats.dropped == 3
