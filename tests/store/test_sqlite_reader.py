"""The plain reader the eval cache uses on a SQLite file: it sees every commit, steps
aside when busy, and is closed with the engine."""

from __future__ import annotations

import threading
from pathlib import Path

from controltower.store import open_eval_store, open_store
from controltower.store.engine import create_store_engine
from controltower.store.sqlite_reader import SqliteReader


def test_cache_reads_through_the_reader_see_each_commit(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'evals.db'}"
    writer, reader = open_eval_store(url), open_eval_store(url)  # two engines, one file
    try:
        assert reader._reader is not None
        assert reader.cache_get(["k"]) == {}
        writer.cache_put({"k": {"data": [1, 2]}, "j": "text"})
        assert reader.cache_get(["k", "j", "absent"]) == {"k": {"data": [1, 2]}, "j": "text"}
    finally:
        writer._engine.dispose()
        reader._engine.dispose()


def test_a_busy_reader_hands_the_read_to_the_engine(tmp_path: Path) -> None:
    store = open_eval_store(f"sqlite:///{tmp_path / 'evals.db'}")
    try:
        store.cache_put({"k": 1})
        reader = store._reader
        assert reader is not None
        held = threading.Event()
        release = threading.Event()

        def hold() -> None:
            with reader._lock:
                held.set()
                release.wait(5)

        thread = threading.Thread(target=hold)
        thread.start()
        held.wait(5)
        assert reader.fetch("SELECT 1", ()) is None  # busy: the caller uses the engine
        assert store.cache_get(["k"]) == {"k": 1}
        release.set()
        thread.join()
    finally:
        store._engine.dispose()


def test_the_reader_is_closed_with_the_engine(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'traces.db'}")
    evals = store.eval_store()
    evals.cache_get(["k"])
    assert evals._reader is not None and evals._reader._conn is not None
    store.close()
    assert evals._reader._conn is None
    assert evals.cache_get(["k"]) == {}  # opened again on the next read


def test_only_a_sqlite_file_gets_a_reader(tmp_path: Path) -> None:
    memory = create_store_engine("sqlite://")
    assert SqliteReader.for_engine(memory) is None
    memory.dispose()
    on_file = create_store_engine(f"sqlite:///{tmp_path / 'x.db'}")
    assert SqliteReader.for_engine(on_file) is not None
    on_file.dispose()
