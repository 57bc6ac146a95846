"""GET /api/prompts/{name}/metrics over a real server on a random port, backed by SQLite."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from controltower.domain import Score
from controltower.domain.prompt import PromptContent, SplitArm
from controltower.server.api import build_api
from controltower.server.prompt_routes import prompt_routes
from controltower.store import SqlPromptStore, SqlTraceStore, open_store
from controltower.tracing import TraceWriter
from tests.store.records import T0
from tests.store.test_prompt_metrics import served


@pytest.fixture
def store(sqlite_url: str) -> Iterator[SqlTraceStore]:
    """Traces of `faq`: v1 served 4 requests (one failed), v2 one; prompts beside them."""
    traces = open_store(sqlite_url)
    prompts = SqlPromptStore(traces.engine)
    for params in ({"temperature": 0.1}, {"temperature": 0.5}, {"temperature": 0.9}):
        prompts.create_version(
            "faq", PromptContent(text="Q: {{ q }}", params=params), message=None, author=None
        )
    prompts.move_label("faq", "production", 1, actor="me")
    prompts.split_label("faq", "canary", [SplitArm(1, 90), SplitArm(2, 10)], actor="me")
    records = [
        served(i, 1, 1_000 * (i + 1), prompt="faq", status="error" if i == 0 else "ok")
        for i in range(4)
    ]
    traces.write([*records, served(9, 2, 2_000, prompt="faq")])
    traces.write_scores(
        [Score(id="s1", trace_id=f"{9:032x}", name="stars", value=4, created_us=T0, source="user")]
    )
    try:
        yield traces
    finally:
        traces.close()


@pytest.fixture
def api(store: SqlTraceStore) -> Iterator[httpx.Client]:
    """The API app (prompt routes reading metrics from the trace store) under uvicorn."""
    app = build_api(
        store, TraceWriter(store), lambda: b"", prompt_routes(SqlPromptStore(store.engine), store)
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="off"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        threading.Event().wait(0.01)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        with httpx.Client(base_url=url) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def by_version(answer: httpx.Response) -> dict[int, dict[str, Any]]:
    assert answer.status_code == 200, answer.text
    return {row["version"]: row for row in answer.json()["data"]}


def test_every_version_with_its_labels_and_metrics(api: httpx.Client) -> None:
    answer = api.get("/api/prompts/faq/metrics")
    assert [row["version"] for row in answer.json()["data"]] == [3, 2, 1]  # newest first
    rows = by_version(answer)
    one, two, three = rows[1], rows[2], rows[3]
    assert sorted(one["labels"]) == ["canary", "production"]
    assert two["labels"] == ["canary"]
    assert three["labels"] == ["latest"]
    assert (one["requests"], one["errors"], one["error_rate"]) == (4, 1, 0.25)
    assert (one["latency_p50_ms"], one["latency_p95_ms"]) == (2.0, 4.0)
    assert (one["input_tokens"], one["output_tokens"], one["cost"]) == (40, 16, 2.0)
    assert one["user_scores"] == {}
    assert two["user_scores"] == {"stars": {"mean": 4.0, "count": 1}}
    assert three == {
        "version": 3,
        "labels": ["latest"],
        "requests": 0,
        "errors": 0,
        "error_rate": None,
        "latency_p50_ms": None,
        "latency_p95_ms": None,
        "input_tokens": 0,
        "output_tokens": 0,
        "cost": None,
        "user_scores": {},
    }


def test_since_and_until_bound_the_window(api: httpx.Client) -> None:
    since = "2023-11-14T22:13:22Z"  # T0 + 2 s: the 3rd and 4th requests of v1, and v2's
    rows = by_version(api.get("/api/prompts/faq/metrics", params={"since": since}))
    assert (rows[1]["requests"], rows[2]["requests"]) == (2, 1)
    rows = by_version(api.get("/api/prompts/faq/metrics", params={"until": since}))
    assert (rows[1]["requests"], rows[2]["requests"]) == (2, 0)


def test_an_unknown_prompt_or_a_bad_time_is_an_error(api: httpx.Client) -> None:
    answer = api.get("/api/prompts/nobody/metrics")
    assert answer.status_code == 404
    assert "nobody" in answer.json()["error"]["message"]
    answer = api.get("/api/prompts/faq/metrics", params={"since": "yesterday-ish"})
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "since"


def test_the_route_is_in_the_openapi_schema(api: httpx.Client) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    assert "get" in paths["/api/prompts/{name}/metrics"]
