"""Fixtures of the ingest tests: a gateway whose store can be held shut, and an HTTP client."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest

from controltower.domain import TraceRecord
from controltower.store import InMemoryStore
from tests.conftest import DEMO, RunningGateway, config, running_gateway


class GatedStore(InMemoryStore):
    """An in-memory store whose writes wait until `gate` is set (to fill the trace queue)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.gate = threading.Event()

    def write(self, records: Sequence[TraceRecord]) -> None:
        self.entered.set()
        self.gate.wait(10)
        super().write(records)


@pytest.fixture
def gateway() -> Iterator[RunningGateway]:
    with running_gateway(config(DEMO)) as gw:
        yield gw


@pytest.fixture
def small_gateway() -> Iterator[RunningGateway]:
    """Bodies of at most 2,000 bytes."""
    with running_gateway(config("max_request_bytes: 2000\n" + DEMO)) as gw:
        yield gw


@pytest.fixture
def gated_gateway() -> Iterator[RunningGateway]:
    """A trace queue of 2 records in front of a store that blocks until told to write."""
    store = GatedStore()
    settings = config("trace_queue_size: 2\ntrace_batch_size: 1\n" + DEMO)
    try:
        with running_gateway(settings, store) as gw:
            yield gw
    finally:
        store.gate.set()


@pytest.fixture
def http(gateway: RunningGateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        yield client


def stored_trace(gw: RunningGateway, client: httpx.Client, trace_id: str) -> dict[str, Any]:
    """The trace through `GET /api/traces/{id}`, once the writer has flushed."""
    assert gw.app.writer.flush(10)
    response = client.get(f"/api/traces/{trace_id}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]
