"""When the trace store fails, the gateway keeps serving, retries, and counts what it drops."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import httpx

from controltower.domain import TraceRecord
from controltower.store import InMemoryStore
from tests.conftest import DEMO, config, running_gateway


class FlakyStore(InMemoryStore):
    """An in-memory store that refuses writes while `down` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.down = threading.Event()
        self.refused = 0

    def write(self, records: Sequence[TraceRecord]) -> None:
        if self.down.is_set():
            self.refused += 1
            raise ConnectionError("database is down")
        super().write(records)


def metric(url: str, name: str) -> int:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    raise AssertionError(f"{name} not in /metrics")


def test_requests_succeed_while_the_store_is_down_and_traces_arrive_after() -> None:
    store = FlakyStore()
    store.down.set()
    with running_gateway(config(DEMO), store) as gw:
        c = gw.client()
        ids = []
        for i in range(5):
            raw = c.chat.completions.with_raw_response.create(
                model="demo", messages=[{"role": "user", "content": f"m{i}"}]
            )
            ids.append(raw.headers["x-controltower-trace-id"])
        assert not gw.app.writer.flush(1.0)  # cannot finish while the store is down
        assert store.refused >= 1
        assert metric(gw.url, "controltower_trace_write_failures_total") >= 1
        store.down.clear()
        assert gw.app.writer.flush(15)
        assert all(store.get_trace(i) is not None for i in ids)
        assert metric(gw.url, "controltower_traces_dropped_total") == 0


def test_a_full_queue_drops_and_counts_but_never_fails_a_request() -> None:
    store = FlakyStore()
    store.down.set()
    settings = config("trace_queue_size: 3\ntrace_batch_size: 1\n" + DEMO)
    with running_gateway(settings, store) as gw:
        c = gw.client()
        for _ in range(10):
            c.chat.completions.create(model="demo", messages=[{"role": "user", "content": "x"}])
        dropped = metric(gw.url, "controltower_traces_dropped_total")
        assert dropped >= 10 - 3 - 1  # 3 queued, at most 1 in the batch being retried
        assert metric(gw.url, "controltower_traces_enqueued_total") == 10 - dropped
        store.down.clear()
        assert gw.app.writer.flush(15)
