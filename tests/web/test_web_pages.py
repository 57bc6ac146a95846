"""Each page of the UI over HTTP, against a real server holding the seeded traces."""

from __future__ import annotations

import re

import httpx
from starlette.applications import Starlette
from starlette.testclient import TestClient

from controltower.domain import Trace, TraceRecord, now_us
from controltower.store import InMemoryStore, open_store
from controltower.web import web_routes

from ..conftest import DEMO, RunningGateway, config, running_gateway
from . import data


def trace_data(html: str) -> str:
    found = re.search(r'<script type="application/json" id="trace-data">(.*?)</script>', html, re.S)
    assert found is not None
    return found.group(1)


def test_home_redirects_to_the_trace_list(http: httpx.Client) -> None:
    answer = http.get("/")
    assert answer.status_code == 307 and answer.headers["location"] == "/traces"


def test_trace_list_shows_every_column(http: httpx.Client) -> None:
    answer = http.get("/traces")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.headers["cache-control"] == "no-store"
    html = answer.text
    assert html.count('class="trace-link"') == 6
    for text in ("support-agent", "batch-pipeline", "summarize", "alice", data.SESSION, "2.40 s"):
        assert text in html
    assert "status-error" in html and 'class="tag"' in html
    assert f'href="/traces/{data.trace_id(1)}"' in html
    assert 'href="/users/alice"' in html and f'href="/sessions/{data.SESSION}"' in html


def test_trace_list_filters_from_the_query_string(http: httpx.Client) -> None:
    html = http.get("/traces", params={"user": "alice", "since": "24h", "tags": "agent"}).text
    assert html.count('class="trace-link"') == 2
    assert 'value="alice"' in html  # the form shows the filter
    assert 'class="chip" href="/traces?since=24h&amp;tags=agent"' in html  # a chip removes it
    html = http.get("/traces", params={"status": "error"}).text
    assert html.count('class="trace-link"') == 1 and "summarize" in html
    html = http.get("/traces", params={"q": "tomorrow", "metadata": "tenant=globex"}).text
    assert html.count('class="trace-link"') == 1
    html = http.get("/traces", params={"min_latency": "3s"}).text
    assert html.count('class="trace-link"') == 1 and "batch-pipeline" in html
    html = http.get("/traces", params={"model": "no-such-model"}).text
    assert "No traces match these filters." in html


def test_invalid_filters_are_shown_not_a_500(http: httpx.Client) -> None:
    answer = http.get("/traces", params={"min_cost": "cheap", "name": "x"})
    assert answer.status_code == 400
    assert "Invalid filter." in answer.text and "min_cost must be a number" in answer.text
    assert 'value="cheap"' in answer.text  # the form keeps what was typed
    answer = http.get("/traces", params={"cursor": "not-a-cursor"})
    assert answer.status_code == 400 and "cursor is not valid" in answer.text
    answer = http.get("/sessions", params={"since": "last tuesday"})
    assert answer.status_code == 400 and "ISO date" in answer.text


def test_cursor_pagination(http: httpx.Client) -> None:
    seen: list[str] = []
    url = "/traces?limit=4"
    for _ in range(3):
        html = http.get(url).text
        seen += re.findall(r'href="/traces/([0-9a-f]{32})" class="trace-link"', html)
        found = re.search(r'rel="next" href="([^"]+)"', html)
        if found is None:
            break
        url = found.group(1).replace("&amp;", "&")
        assert "limit=4" in url
    assert len(seen) == 6 == len(set(seen))


def test_trace_page_carries_the_tree_but_no_span_payloads(http: httpx.Client) -> None:
    html = http.get(f"/traces/{data.trace_id(1)}").text
    for text in ("support-agent", "alice", data.SESSION, "production", "tenant", "acme"):
        assert text in html
    payload = trace_data(html)
    for name in ("search-docs", "get_weather", "plan", "answer", '"generation"'):
        assert name in payload
    assert "You are a helpful support agent" not in payload  # span inputs load lazily


def test_large_trace_page_stays_small(http: httpx.Client) -> None:
    answer = http.get(f"/traces/{data.BIG_TRACE_ID}")
    assert answer.status_code == 200
    assert "step-3199" in answer.text and "lorem ipsum" not in answer.text
    assert len(answer.content) < 600_000  # 3,200 rows, none of the MBs of text
    span = http.get(f"/api/traces/{data.BIG_TRACE_ID}/spans/{1:08x}{0:08x}").json()
    assert len(span["output"]) == 1_500_000


def test_unknown_things_get_a_404_page(http: httpx.Client) -> None:
    for path, name in (("/traces/", "0" * 32), ("/sessions/", "nope"), ("/users/", "nobody")):
        answer = http.get(path + name)
        assert answer.status_code == 404, path
        assert answer.headers["content-type"].startswith("text/html")
        assert "Not found" in answer.text and name in answer.text


def test_sessions_and_session_page(http: httpx.Client) -> None:
    html = http.get("/sessions").text
    assert data.SESSION in html and "chat-7" in html and "alice" in html
    html = http.get("/sessions", params={"user": "carol"}).text
    assert "chat-7" in html and data.SESSION not in html
    html = http.get(f"/sessions/{data.SESSION}").text
    turns = re.findall(r'<div class="msg-body clamp">(.*?)</div>', html, re.S)
    assert turns == [
        "What is the weather in Paris?",
        "Answer 1: it is sunny in Paris.",
        "And tomorrow?",
        "Answer 2: it is sunny in Paris.",
        "Thanks! Anything else?",
        "Answer 3: it is sunny in Paris.",
    ]
    assert f'href="/traces/{data.trace_id(3)}"' in html and "$0.000213" in html


def test_users_and_user_page(http: httpx.Client) -> None:
    html = http.get("/users").text
    for user in ("alice", "bob", "carol", "batch-bot"):
        assert f'href="/users/{user}"' in html
    html = http.get("/users/alice").text
    assert "1,080" in html and "$0.000213" in html  # tokens and cost of 3 traces
    assert html.count('class="trace-link"') == 3 and data.SESSION in html
    assert 'href="/traces?user=alice"' in html


def test_static_files_are_served(http: httpx.Client) -> None:
    for name in ("app.css", "app.js", "viewer.js", "trace.js", "favicon.svg"):
        answer = http.get(f"/static/{name}")
        assert answer.status_code == 200, name
    assert http.get("/static/missing.js").status_code == 404


def test_stored_text_is_escaped(served: RunningGateway, http: httpx.Client) -> None:
    evil = "<script>alert(1)</script>"
    trace = Trace(id="f" * 32, name=evil, start_us=now_us(), user_id=evil, tags=[evil])
    served.store.write([TraceRecord(trace=trace, spans=[])])
    for path in ("/traces", f"/traces/{'f' * 32}", "/users"):
        html = http.get(path).text
        assert evil not in html and "&lt;script&gt;" in html
    assert "\\u003cscript\\u003e" in trace_data(http.get(f"/traces/{'f' * 32}").text)


def test_a_gateway_call_shows_up(served: RunningGateway, http: httpx.Client) -> None:
    raw = served.client().chat.completions.with_raw_response.create(
        model="demo", messages=[{"role": "user", "content": "hello from the UI test"}], user="dave"
    )
    trace_id = raw.headers["x-controltower-trace-id"]
    served.trace(trace_id)
    html = http.get("/traces", params={"user": "dave"}).text
    assert f'href="/traces/{trace_id}"' in html
    assert http.get(f"/traces/{trace_id}").status_code == 200


def csrf_of(form: httpx.Response) -> str:
    """The CSRF token of a login form (its cookie stays with the client)."""
    found = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert found is not None, form.text
    return found.group(1)


def test_login_sets_the_cookie_the_master_key_check_accepts() -> None:
    with (
        running_gateway(config("master_key: sk-ui-test\n" + DEMO)) as gw,
        httpx.Client(base_url=gw.url) as client,
    ):
        assert client.get("/traces").status_code == 401
        form = client.get("/login", params={"next": "/users"})
        assert form.status_code == 200 and 'value="/users"' in form.text
        assert client.get("/static/app.css").status_code == 200
        token = csrf_of(form)
        answer = client.post("/login", data={"key": "sk-ui-test", "next": "/users", "csrf": token})
        assert answer.status_code == 303 and answer.headers["location"] == "/users"
        cookie = answer.headers["set-cookie"]
        assert "controltower_key=" in cookie and "sk-ui-test" not in cookie  # a session
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        assert client.get("/users").status_code == 200  # httpx kept the cookie
        assert client.get("/traces").status_code == 200
        assert client.post("/logout").status_code == 303
        assert client.get("/traces").status_code == 401


def test_login_refuses_empty_keys_and_foreign_redirects(http: httpx.Client) -> None:
    token = csrf_of(http.get("/login"))
    answer = http.post("/login", data={"key": "", "next": "/traces", "csrf": token})
    assert answer.status_code == 400 and "Enter the master key" in answer.text
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        answer = http.post("/login", data={"key": "k", "next": target, "csrf": token})
        assert answer.status_code == 303 and answer.headers["location"] == "/traces"


def test_every_page_over_sqlite(sqlite_url: str) -> None:
    store = open_store(sqlite_url)
    data.seed(store)
    with running_gateway(config(DEMO), store) as gw, httpx.Client(base_url=gw.url) as client:
        pages = {
            "/traces?user=alice&since=1d": "support-agent",
            f"/traces/{data.trace_id(1)}": "get_weather",
            f"/traces/{data.BIG_TRACE_ID}": "step-3199",
            "/sessions": data.SESSION,
            f"/sessions/{data.SESSION}": "And tomorrow?",
            "/users": "carol",
            "/users/alice": "1,080",
        }
        for path, text in pages.items():
            answer = client.get(path)
            assert answer.status_code == 200, path
            assert text in answer.text, path


def test_login_refuses_a_wrong_key_when_it_can_check() -> None:
    app = Starlette(routes=web_routes(InMemoryStore(), check_key=lambda key: key == "right"))
    with TestClient(app, follow_redirects=False) as client:
        token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
        assert token is not None
        form = {"next": "/users", "csrf": token.group(1)}
        wrong = client.post("/login", data={"key": "wrong", **form})
        assert wrong.status_code == 401 and "not the master key of this server" in wrong.text
        assert "controltower_key" not in wrong.headers.get("set-cookie", "")
        assert 'value="/users"' in wrong.text
        right = client.post("/login", data={"key": "right", **form})
        assert right.status_code == 303 and right.headers["location"] == "/users"
