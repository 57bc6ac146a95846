"""Fixtures for the SDK: a clean SDK per test, a real gateway, and a scripted ingest server."""

from __future__ import annotations

import gzip
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest

import controltower as ct
from controltower.sdk import runtime
from tests.conftest import DEMO, RunningGateway, config, running_gateway


@pytest.fixture(autouse=True)
def fresh_sdk(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No SDK configuration leaks in from the environment or from another test."""
    for name in (
        "CONTROLTOWER_URL",
        "CONTROLTOWER_API_KEY",
        "CONTROLTOWER_DATABASE_URL",
        "CONTROLTOWER_SAMPLE_RATE",
        "CONTROLTOWER_PROJECT",
        "CONTROLTOWER_ENVIRONMENT",
        "CONTROLTOWER_RELEASE",
    ):
        monkeypatch.delenv(name, raising=False)
    yield
    ct.shutdown(5)
    runtime.RUNTIME = None


@pytest.fixture
def gateway() -> Iterator[RunningGateway]:
    """A real gateway (mock provider) with the SDK exporting to it."""
    with running_gateway(config(DEMO)) as gw:
        ct.init(url=gw.url, flush_interval_s=0.05)
        yield gw
        ct.shutdown(5)


def stored(gw: RunningGateway, trace_id: str | None) -> dict[str, Any]:
    """The trace as the server stored it, after the SDK and the server flushed."""
    assert trace_id is not None
    assert ct.flush(10)
    return gw.trace(trace_id)


def spans_by_name(trace: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The trace's spans keyed by name (names are unique in these tests)."""
    return {span["name"]: span for span in trace["spans"]}


@dataclass
class Received:
    """One request the scripted server answered."""

    headers: dict[str, str]
    body: dict[str, Any]
    status: int


@dataclass
class ScriptedIngest:
    """Stands in for `POST /api/ingest`: answers from a script, records every request."""

    url: str = ""
    statuses: deque[tuple[int, dict[str, str], dict[str, Any]]] = field(default_factory=deque)
    received: list[Received] = field(default_factory=list)
    delay_s: float = 0.0
    gate: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, status: int, headers: dict[str, str] | None = None, **body: Any) -> None:
        """Answer the next request with this status (then 200 again)."""
        self.statuses.append((status, headers or {}, body))

    def events(self, kind: str = "span", ok_only: bool = True) -> list[dict[str, Any]]:
        """The bodies of the events of one type the server received (and accepted)."""
        with self.lock:
            requests = [r for r in self.received if r.status == 200 or not ok_only]
        return [e["body"] for r in requests for e in r.body["batch"] if e["type"] == kind]

    def handle(self, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, str], bytes]:
        self.gate.wait(10)
        if self.delay_s:
            time.sleep(self.delay_s)
        if headers.get("content-encoding") == "gzip":
            raw = gzip.decompress(raw)
        body = orjson.loads(raw)
        with self.lock:
            status, extra, answer = self.statuses.popleft() if self.statuses else (200, {}, {})
            self.received.append(Received(headers, body, status))
        if not answer:
            answer = {"accepted": len(body["batch"]), "rejected": 0, "errors": []}
        return status, extra, orjson.dumps(answer)


@pytest.fixture
def ingest() -> Iterator[ScriptedIngest]:
    """A scripted ingest server on a random localhost port."""
    scripted = ScriptedIngest()
    scripted.gate.set()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            headers["path"] = self.path
            status, extra, body = scripted.handle(headers, raw)
            self.send_response(status)
            for name, value in {**extra, "Content-Type": "application/json"}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    scripted.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield scripted
    finally:
        scripted.gate.set()
        ct.shutdown(5)
        server.shutdown()
        server.server_close()
        thread.join(5)
