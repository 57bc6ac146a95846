"""The read API over HTTP: filters, sessions, users, scores, deletion, trace context."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from controltower.domain import TraceRecord
from controltower.store import InMemoryStore
from controltower.tracing import RetentionPolicy

from ..conftest import DEMO, RunningGateway, config, running_gateway
from ..store.records import T0, make_record


def labelled(n: int, user: str, session: str, tags: list[str]) -> TraceRecord:
    record = make_record(n, output=f"reply {n}")
    record.trace.user_id, record.trace.session_id, record.trace.tags = user, session, tags
    return record


@pytest.fixture
def served() -> Iterator[tuple[RunningGateway, httpx.Client]]:
    store = InMemoryStore()
    store.write(
        [
            labelled(1, "ann", "s-a", ["beta"]),
            labelled(2, "ann", "s-a", []),
            labelled(3, "bob", "s-b", ["beta"]),
        ]
    )
    with running_gateway(config(DEMO), store) as gw, httpx.Client(base_url=gw.url) as http:
        yield gw, http


def test_traces_filter_by_query_string(served: tuple[RunningGateway, httpx.Client]) -> None:
    _, http = served
    page = http.get("/api/traces", params={"user": "ann", "tags": "beta"}).json()
    assert [t["output"] for t in page["data"]] == ["reply 1"]
    page = http.get("/api/traces", params={"q": "REPLY 3", "limit": 1}).json()
    assert [t["user_id"] for t in page["data"]] == ["bob"] and page["next_cursor"] is None
    bad = http.get("/api/traces", params={"min_cost": "cheap"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "min_cost"


def test_trace_span_session_user(served: tuple[RunningGateway, httpx.Client]) -> None:
    _, http = served
    trace = http.get(f"/api/traces/{1:032x}").json()
    span = http.get(f"/api/traces/{trace['id']}/spans/{trace['spans'][1]['id']}").json()
    assert span["model"] == "gpt-4o-mini"
    assert http.get(f"/api/traces/{1:032x}/spans/{0:016x}ff").status_code == 404
    session = http.get("/api/sessions/s-a").json()
    assert session["trace_count"] == 2 and [t["output"] for t in session["traces"]] == [
        "reply 1",
        "reply 2",
    ]
    sessions = http.get("/api/sessions").json()["data"]
    assert [s["id"] for s in sessions] == ["s-b", "s-a"]
    ann = http.get("/api/users/ann").json()
    assert ann["trace_count"] == 2 and ann["usage"]["total_tokens"] == 30
    assert [u["id"] for u in http.get("/api/users").json()["data"]] == ["bob", "ann"]
    assert http.get("/api/users/nobody").status_code == 404


def test_scores_are_added_and_listed(served: tuple[RunningGateway, httpx.Client]) -> None:
    _, http = served
    trace_id = f"{2:032x}"
    made = http.post(
        "/api/scores",
        json={"trace_id": trace_id, "name": "thumbs", "value": False, "source": "user"},
    )
    assert made.status_code == 201 and made.json()["data_type"] == "boolean"
    http.post("/api/scores", json={"trace_id": trace_id, "name": "topic", "value": "refunds"})
    scores = http.get(f"/api/traces/{trace_id}").json()["scores"]
    assert {s["name"]: s["value"] for s in scores} == {"thumbs": False, "topic": "refunds"}
    listed = http.get("/api/scores", params={"name": "topic"}).json()["data"]
    assert [s["value"] for s in listed] == ["refunds"]
    for body, param in [
        ({"name": "x", "value": 1}, "trace_id"),
        ({"trace_id": trace_id, "value": 1}, "name"),
        ({"trace_id": trace_id, "name": "x", "value": [1]}, "value"),
        ({"trace_id": trace_id, "name": "x", "value": 1, "source": "robot"}, "source"),
    ]:
        answer = http.post("/api/scores", json=body)
        assert answer.status_code == 400 and answer.json()["error"]["param"] == param
    assert http.post("/api/scores", content=b"{nope").status_code == 400


def test_delete_user_data_reports_counts(served: tuple[RunningGateway, httpx.Client]) -> None:
    _, http = served
    http.post("/api/scores", json={"trace_id": f"{1:032x}", "name": "n", "value": 1})
    answer = http.delete("/api/users/ann/data")
    assert answer.json() == {
        "user_id": "ann",
        "deleted": {"traces": 2, "spans": 4, "scores": 1, "spend": 0},
    }
    assert http.get("/api/users/ann").status_code == 404
    assert [t["user_id"] for t in http.get("/api/traces").json()["data"]] == ["bob"]


def test_openapi_documents_the_query_api(served: tuple[RunningGateway, httpx.Client]) -> None:
    _, http = served
    schema = http.get("/openapi.json").json()
    assert schema["openapi"].startswith("3.")
    paths = schema["paths"]
    for path in ["/api/traces", "/api/traces/{trace_id}", "/api/sessions", "/api/users"]:
        assert "get" in paths[path] and paths[path]["get"]["summary"]
    assert "delete" in paths["/api/users/{user_id}/data"]
    assert "post" in paths["/api/scores"]


def test_gateway_call_continues_the_callers_trace() -> None:
    store = InMemoryStore()
    trace_id, parent = "1f" * 16, "2e" * 8
    with running_gateway(config(DEMO), store) as gw:
        client = gw.client()
        reply = client.chat.completions.with_raw_response.create(
            model="demo",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"traceparent": f"00-{trace_id}-{parent}-01"},
        )
        assert reply.headers["x-controltower-trace-id"] == trace_id
        trace = gw.trace(trace_id)
    assert trace["spans"][0]["parent_id"] == parent
    assert trace["usage"]["input_tokens"] is not None


def test_a_malformed_traceparent_starts_a_new_trace(demo_gateway: RunningGateway) -> None:
    reply = demo_gateway.client().chat.completions.with_raw_response.create(
        model="demo",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"traceparent": "00-zz-not-a-context"},
    )
    trace = demo_gateway.trace(reply.headers["x-controltower-trace-id"])
    assert trace["spans"][0]["parent_id"] is None


def test_retention_keeps_each_project_for_its_days() -> None:
    day = 86_400 * 1_000_000
    store = InMemoryStore()
    store.write(
        [
            make_record(1, project="prod", start_us=T0 - 10 * day),
            make_record(2, project="prod", start_us=T0 - 40 * day),
            make_record(3, project="staging", start_us=T0 - 3 * day),
            make_record(4, project="audit", start_us=T0 - 300 * day),
        ]
    )
    deleted = RetentionPolicy(days=30, projects={"staging": 2, "audit": 365}).sweep(store, T0)
    assert deleted == {"traces": 2, "spans": 4, "scores": 0}
    left, _ = store.list_traces()
    assert sorted(int(t["id"], 16) for t in left) == [1, 4]


def test_the_app_serves_prompts_from_its_own_database(sqlite_url: str) -> None:
    from controltower.store import open_store

    with (
        running_gateway(config(DEMO), open_store(sqlite_url)) as gw,
        httpx.Client(base_url=gw.url) as http,
    ):
        made = http.post(
            "/api/prompts/greet/versions",
            json={"messages": [{"role": "user", "content": "Hi {{ name }}"}]},
        )
        assert made.status_code == 201, made.text
        rendered = http.post("/api/prompts/greet/render", json={"variables": {"name": "Ann"}})
        assert rendered.json()["messages"] == [{"role": "user", "content": "Hi Ann"}]
