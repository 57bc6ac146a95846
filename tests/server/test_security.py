"""Security against a real server: content types, Host and Origin checks, security headers,
the signed login session and its form token, throttled wrong keys, Bearer in any case."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import openai
import orjson
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from controltower.server.asgi import SECURITY_HEADERS, RequestGuard
from controltower.server.auth import FailedLogins, KeyAuth
from controltower.store import InMemoryStore
from controltower.web import web_routes
from controltower.web.login import session_valid, session_value

from ..conftest import DEMO, RunningGateway, config, running_gateway

KEY = "sk-security-test"
PROMPT = {"text": "Hello {{ who }}", "model": "demo"}
MESSAGES = [{"role": "user", "content": "hi"}]


def a_score(gw: RunningGateway) -> dict[str, Any]:
    """A score body for a stored trace (scores need one), made by a gateway call."""
    answer = httpx.post(
        f"{gw.base_url}/chat/completions", json={"model": "demo", "messages": MESSAGES}
    )
    trace_id = answer.headers["x-controltower-trace-id"]
    gw.trace(trace_id)
    return {"trace_id": trace_id, "name": "pushed", "value": 1}


@pytest.fixture(scope="module")
def open_gw() -> Any:
    """A gateway without a master key: anyone on loopback may use it."""
    with running_gateway(config(DEMO)) as gw:
        yield gw


@pytest.fixture(scope="module")
def score(open_gw: RunningGateway) -> dict[str, Any]:
    return a_score(open_gw)


@pytest.fixture
def http(open_gw: RunningGateway) -> Any:
    with httpx.Client(base_url=open_gw.url, timeout=30) as client:
        yield client


def keyed_gateway(extra: str = "") -> Any:
    return running_gateway(config(f"master_key: {KEY}\n{extra}" + DEMO))


def error_of(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    return answer.json()["error"]  # type: ignore[no-any-return]


def nothing_stored(gw: RunningGateway, score: dict[str, Any]) -> None:
    scores = gw.store.list_scores(trace_id=score["trace_id"])
    assert [s for s in scores if s["name"] == "pushed"] == []
    assert all(newest.name != "pushed" for newest, _ in gw.app.prompt_store.list_prompts())


def login_form(client: httpx.Client) -> str:
    """The login form's CSRF token (its cookie stays in the client)."""
    page = client.get("/login")
    assert page.status_code == 200
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert found is not None
    return found.group(1)


def log_in(client: httpx.Client, key: str = KEY) -> httpx.Response:
    token = login_form(client)
    return client.post("/login", data={"key": key, "next": "/traces", "csrf": token})


# -- content types ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
def test_state_changing_routes_take_only_json(
    open_gw: RunningGateway, http: httpx.Client, content_type: str, score: dict[str, Any]
) -> None:
    headers = {"content-type": content_type}
    body = orjson.dumps(score)
    for path in ("/api/scores", "/api/prompts/pushed/versions", "/v1/chat/completions"):
        error = error_of(http.post(path, content=body, headers=headers), 415)
        assert error["code"] == "unsupported_media_type" and error["type"]
    error = error_of(http.put("/api/prompts/pushed/labels/production", headers=headers), 415)
    assert error["code"] == "unsupported_media_type"
    nothing_stored(open_gw, score)


def test_json_bodies_and_otlp_still_go_through(
    open_gw: RunningGateway, http: httpx.Client, score: dict[str, Any]
) -> None:
    charset = {"content-type": "application/json; charset=utf-8"}
    score = {**score, "name": "kept"}
    assert http.post("/api/scores", json=score, headers=charset).status_code == 201
    assert http.post("/api/ingest", json={"batch": []}).status_code == 200
    protobuf = {"content-type": "application/x-protobuf"}
    assert http.post("/v1/traces", content=b"", headers=protobuf).status_code == 200
    # scripts that leave the type out are read as JSON; a browser (with an Origin) is not
    assert error_of(http.post("/api/scores", content=b"{nope"), 400)
    same = {"origin": open_gw.url}
    error = error_of(http.post("/api/scores", content=b"{}", headers=same), 415)
    assert error["code"] == "unsupported_media_type"
    # no body, no type needed
    assert http.delete("/api/users/nobody/data", headers=same).status_code == 200


# -- Host and Origin ---------------------------------------------------------------------


def test_a_host_that_is_not_this_server_is_refused(open_gw: RunningGateway) -> None:
    port = open_gw.url.rsplit(":", 1)[1]
    with httpx.Client(base_url=open_gw.url) as client:
        for path in ("/api/traces", "/v1/models", "/traces", "/health"):
            answer = client.get(path, headers={"host": f"evil.example:{port}"})
            error = error_of(answer, 421)
            assert error["code"] == "invalid_host" and "allowed_hosts" in error["message"]
        answer = client.post(
            "/v1/chat/completions",
            json={"model": "demo", "messages": MESSAGES},
            headers={"host": "rebound.example"},
        )
        assert answer.status_code == 421
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", "LOCALHOST", "app.localhost"):
            assert client.get("/api/traces", headers={"host": host}).status_code == 200, host


def test_allowed_hosts_adds_names() -> None:
    settings = config("allowed_hosts: [gw.example.com, .corp.example]\n" + DEMO)
    with running_gateway(settings) as gw, httpx.Client(base_url=gw.url) as client:
        score = a_score(gw)
        for host in ("gw.example.com", "gw.example.com:8443", "corp.example", "a.b.corp.example"):
            assert client.get("/api/traces", headers={"host": host}).status_code == 200, host
        assert client.get("/api/traces", headers={"host": "example.com"}).status_code == 421
        # pages of a listed name may write; others may not
        listed = {"origin": "https://gw.example.com"}
        assert client.post("/api/scores", json=score, headers=listed).status_code == 201
        other = {"origin": "https://evil.example"}
        assert client.post("/api/scores", json=score, headers=other).status_code == 403


def test_wildcard_host_does_not_admit_other_origins() -> None:
    settings = config("allowed_hosts: ['*']\n" + DEMO)
    with running_gateway(settings) as gw, httpx.Client(base_url=gw.url) as client:
        score = a_score(gw)
        assert client.get("/api/traces", headers={"host": "any.example"}).status_code == 200
        headers = {"origin": "http://any.example"}
        assert client.post("/api/scores", json=score, headers=headers).status_code == 403


def test_cross_origin_writes_are_refused(
    open_gw: RunningGateway, http: httpx.Client, score: dict[str, Any]
) -> None:
    port = int(open_gw.url.rsplit(":", 1)[1])
    for origin in (
        f"http://127.0.0.1:{port + 1}",  # another port of the same machine
        f"http://localhost:{port}",  # same port, another name: another origin
        "null",
        "https://evil.example",
    ):
        headers = {"origin": origin}
        error = error_of(http.post("/api/scores", json=score, headers=headers), 403)
        assert error["code"] == "cross_origin_request"
        answer = http.post("/api/prompts/pushed/versions", json=PROMPT, headers=headers)
        assert answer.status_code == 403
        assert http.post("/login", data={"key": "x"}, headers=headers).status_code == 403
    nothing_stored(open_gw, score)
    # reads are not writes; the server's own pages may write
    assert http.get("/api/traces", headers={"origin": "https://evil.example"}).status_code == 200
    same = {"origin": open_gw.url}
    assert http.post("/api/scores", json={**score, "name": "own"}, headers=same).status_code == 201


def test_guard_parses_hosts_and_origins() -> None:
    guard = RequestGuard(["gw.example.com:8443", ".corp.example"])

    def scope(method: str, **headers: str) -> dict[str, Any]:
        raw = [(name.encode(), value.encode()) for name, value in headers.items()]
        return {"method": method, "path": "/api/x", "headers": raw, "server": ("10.0.0.5", 80)}

    for host in ("[::1]:4000", "::1", "10.0.0.5", "10.0.0.5:80", "localhost.", "x.corp.example"):
        guard.check(scope("GET", host=host))
    for host in ("10.0.0.6", "evil.example", "localhost.evil.example", "[::2]"):
        with pytest.raises(Exception, match="not a name of this server"):
            guard.check(scope("GET", host=host))
    ok = ["https://gw.example.com:8443", "http://x.corp.example:1", "http://10.0.0.5:80"]
    for origin in ok:
        guard.check(scope("POST", host="10.0.0.5", origin=origin))
    for origin in ("https://gw.example.com", "http://10.0.0.5:81", "null", "gw.example.com"):
        with pytest.raises(Exception, match="may not change anything"):
            guard.check(scope("POST", host="10.0.0.5", origin=origin))


# -- security headers ---------------------------------------------------------------------


def assert_secured(answer: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS:
        assert answer.headers.get(name.decode()) == value.decode(), (answer.url, name)
    csp = answer.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] in ("same-origin", "no-referrer")


def test_security_headers_on_every_answer(open_gw: RunningGateway, http: httpx.Client) -> None:
    chat = {"model": "demo", "messages": MESSAGES}
    assert_secured(http.post("/v1/chat/completions", json=chat))
    with http.stream("POST", "/v1/chat/completions", json={**chat, "stream": True}) as stream:
        assert stream.status_code == 200
        assert_secured(stream)
    for path in ("/api/traces", "/traces", "/login", "/static/app.js", "/v1/models", "/nope"):
        assert_secured(http.get(path))
    assert_secured(http.post("/api/scores", content=b"x", headers={"content-type": "text/plain"}))
    raw = open_gw.client().chat.completions.with_raw_response.create(
        model="demo", messages=MESSAGES
    )
    assert raw.headers["x-content-type-options"] == "nosniff"


def test_security_headers_on_refusals() -> None:
    with keyed_gateway() as gw, httpx.Client(base_url=gw.url) as client:
        assert_secured(client.get("/api/traces"))  # 401
        assert_secured(client.get("/traces", headers={"accept": "text/html"}))  # 303 to log in
        assert_secured(client.get("/api/traces", headers={"host": "evil.example"}))  # 421


def test_ui_pages_have_no_inline_scripts(open_gw: RunningGateway, http: httpx.Client) -> None:
    for path in ("/traces", "/sessions", "/users", "/prompts", "/audit", "/login"):
        html = http.get(path).text
        for script in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in script or 'type="application/json"' in script, (path, script)
        assert not re.search(r"\son[a-z]+\s*=", html), path
        assert "javascript:" not in html and " style=" not in html, path


# -- the login session --------------------------------------------------------------------


def test_the_login_cookie_is_a_signed_session_not_the_key() -> None:
    with keyed_gateway() as gw, httpx.Client(base_url=gw.url) as client:
        answer = log_in(client)
        assert answer.status_code == 303 and answer.headers["location"] == "/traces"
        cookies = answer.headers.get_list("set-cookie")
        session = next(c for c in cookies if c.startswith("controltower_key="))
        assert KEY not in session and "HttpOnly" in session and "SameSite=Strict" in session
        assert "Path=/" in session and "Secure" not in session  # plain HTTP
        value = client.cookies["controltower_key"]
        assert value != KEY and KEY not in value
        assert session_valid(gw.app.auth.sign, value, time.time())
        assert client.get("/api/traces").status_code == 200
        assert client.get("/traces").status_code == 200
        # what a browser must not get away with: the raw key, a forged or expired session
        expires, _, mac = value.partition(".")
        later = str(int(expires) + 3600)
        for forged in (KEY, f"{later}.{mac}", f"{expires}.{'0' * 64}", "1.2", ""):
            answer = httpx.get(f"{gw.url}/api/traces", cookies={"controltower_key": forged})
            assert answer.status_code == 401, forged
        past = int(time.time()) - 1
        stale = f"{past}.{gw.app.auth.sign(b'session:%d' % past)}"
        assert (
            httpx.get(f"{gw.url}/api/traces", cookies={"controltower_key": stale}).status_code
            == 401
        )
        assert client.get("/logout").status_code == 303
        assert client.get("/api/traces").status_code == 401


def test_sessions_end_when_the_master_key_changes() -> None:
    old, new = KeyAuth("sk-old"), KeyAuth("sk-new")
    value = session_value(old.sign, int(time.time()) + 60)
    assert session_valid(old.sign, value, time.time())
    assert not session_valid(new.sign, value, time.time())


def test_the_cookie_is_secure_over_https() -> None:
    auth = KeyAuth(KEY)
    app = Starlette(routes=web_routes(InMemoryStore(), check_key=auth))
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as client:
        page = client.get("/login")
        assert "Secure" in page.headers["set-cookie"]  # the form token's cookie
        token = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
        assert token is not None
        answer = client.post("/login", data={"key": KEY, "csrf": token.group(1)})
        assert answer.status_code == 303
        assert "; Secure" in answer.headers["set-cookie"]


def test_login_form_posts_need_their_token() -> None:
    with keyed_gateway() as gw, httpx.Client(base_url=gw.url) as client:
        answer = client.post("/login", data={"key": KEY, "next": "/traces"})
        assert answer.status_code == 403 and "controltower_key" not in client.cookies
        token = login_form(client)
        answer = client.post("/login", data={"key": KEY, "csrf": "0" * 64})
        assert answer.status_code == 403
        # a token is good only with the cookie it was made for
        with httpx.Client(base_url=gw.url) as other:
            login_form(other)
            answer = other.post("/login", data={"key": KEY, "csrf": token})
            assert answer.status_code == 403 and "controltower_key" not in other.cookies
        assert client.post("/login", data={"key": KEY, "csrf": token}).status_code == 303


def test_logout_refuses_other_sites(open_gw: RunningGateway, http: httpx.Client) -> None:
    assert http.get("/logout", headers={"sec-fetch-site": "same-site"}).status_code == 403
    assert http.get("/logout", headers={"sec-fetch-site": "same-origin"}).status_code == 303


# -- wrong keys ----------------------------------------------------------------------------


def test_wrong_api_keys_are_throttled_per_address() -> None:
    with keyed_gateway() as gw, httpx.Client(base_url=gw.url) as client:
        for _ in range(10):
            bad = client.get("/api/traces", headers={"authorization": "Bearer sk-guess"})
            assert bad.status_code == 401
        blocked = client.get("/api/traces", headers={"authorization": f"Bearer {KEY}"})
        error = error_of(blocked, 429)
        assert error["code"] == "rate_limit_exceeded"
        assert 1 <= int(blocked.headers["retry-after"]) <= 60
        # the login form shares the count: that address is blocked there too
        token = login_form(client)
        answer = client.post("/login", data={"key": KEY, "csrf": token})
        assert answer.status_code == 429 and "retry-after" in answer.headers
        # a signed session is not a guess: it keeps working
        session = session_value(gw.app.auth.sign, int(time.time()) + 60)
        client.cookies.set("controltower_key", session)
        assert client.get("/api/traces").status_code == 200


def test_wrong_keys_in_the_login_form_are_throttled() -> None:
    with keyed_gateway() as gw, httpx.Client(base_url=gw.url) as client:
        token = login_form(client)
        for _ in range(10):
            answer = client.post("/login", data={"key": "sk-guess", "csrf": token})
            assert answer.status_code == 401 and "not the master key" in answer.text
        answer = client.post("/login", data={"key": KEY, "csrf": token})
        assert answer.status_code == 429
        assert 1 <= int(answer.headers["retry-after"]) <= 60
        assert "Too many wrong keys" in answer.text and "controltower_key" not in client.cookies
        blocked = client.get("/v1/models", headers={"authorization": f"Bearer {KEY}"})
        assert blocked.status_code == 429


def test_failed_logins_window() -> None:
    now = [0.0]
    limit = FailedLogins(limit=3, window_s=60, max_clients=2, clock=lambda: now[0])
    for _ in range(3):
        assert limit.wait_s("a") == 0
        limit.failed("a")
    assert limit.wait_s("a") == 60 and limit.wait_s("b") == 0
    now[0] = 59.5
    assert limit.wait_s("a") == pytest.approx(0.5)
    now[0] = 60.0
    assert limit.wait_s("a") == 0  # the window ended
    limit.failed("a")
    limit.failed("b")
    limit.failed("c")  # past max_clients: the oldest is forgotten
    assert limit.wait_s("a") == 0 and len(limit._windows) == 2


# -- clients ------------------------------------------------------------------------------


def test_bearer_in_any_case() -> None:
    with keyed_gateway() as gw, httpx.Client(base_url=gw.url) as client:
        for scheme in ("Bearer", "bearer", "BEARER", "bEaReR"):
            headers = {"authorization": f"{scheme} {KEY}"}
            assert client.get("/api/traces", headers=headers).status_code == 200, scheme
            chat = client.post(
                "/v1/chat/completions",
                json={"model": "demo", "messages": MESSAGES},
                headers=headers,
            )
            assert chat.status_code == 200, scheme
        for wrong in (f"Basic {KEY}", KEY, f"Bearer{KEY}", f"Bearer {KEY}x"):
            headers = {"authorization": wrong}
            assert client.get("/api/traces", headers=headers).status_code == 401, wrong


def test_the_openai_client_keeps_working_with_a_key() -> None:
    with keyed_gateway() as gw:
        client = gw.client(KEY)
        assert client.chat.completions.create(model="demo", messages=MESSAGES)
        assert [m.id for m in client.models.list()]
        assert client.embeddings.create(model="demo", input="hi").data
        with pytest.raises(openai.AuthenticationError):
            gw.client("sk-wrong").models.list()
