"""Cross-site request forgery and DNS rebinding in headless Chromium.

An attacker's page, served from another port of the same machine (a tiny http.server in
a thread), tries to push a prompt and add a score with fetch(), sendBeacon and form
submissions, with the victim logged in and not; nothing may be stored. The UI's own pages
keep working under the Content-Security-Policy.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from ..conftest import DEMO, RunningGateway, config, running_gateway
from .conftest import CHROMIUM
from .data import trace_id

KEY = "sk-csrf-browser"
MESSAGES = [{"role": "user", "content": "hi"}]

# What the attacker's page tries; `GW` and `TRACE` are filled in. Each attempt is one a
# browser sends without asking the target first (no CORS preflight), except the two JSON
# fetches, which the browser refuses after its preflight finds no CORS headers.
ATTACK = """<!doctype html>
<html><head><title>cats</title></head><body>
<iframe name="sink1"></iframe><iframe name="sink2"></iframe><iframe name="sink3"></iframe>
<form id="f1" target="sink1" method="post" enctype="text/plain" action="GW/api/scores">
<input name='{"trace_id": "TRACE", "name": "pushed", "value": 1, "x": "' value='"}'>
</form>
<form id="f2" target="sink2" method="post" action="GW/api/prompts/pushed/versions">
<input name="text" value="pwned">
</form>
<form id="f3" target="sink3" method="post" enctype="text/plain"
  action="GW/api/prompts/pushed/versions">
<input name='{"text": "pwned", "x": "' value='"}'>
</form>
<script>
(async function () {
  var gw = "GW";
  var score = JSON.stringify({ trace_id: "TRACE", name: "pushed", value: 1 });
  var prompt = JSON.stringify({ text: "pwned {{ who }}", model: "demo" });
  var sent = { method: "POST", mode: "no-cors", credentials: "include" };
  var tries = [
    fetch(gw + "/api/scores", Object.assign({ body: score }, sent)),
    fetch(gw + "/api/scores", Object.assign({ body: new Blob([score]) }, sent)),
    fetch(gw + "/api/prompts/pushed/versions", Object.assign({ body: prompt }, sent)),
    fetch(gw + "/api/prompts/pushed/versions",
      Object.assign({ body: new Blob([prompt]) }, sent)),
    fetch(gw + "/api/scores", { method: "POST", credentials: "include", body: score,
      headers: { "content-type": "application/json" } }),
    fetch(gw + "/api/prompts/pushed/versions", { method: "POST", credentials: "include",
      body: prompt, headers: { "content-type": "application/json" } }),
  ];
  navigator.sendBeacon(gw + "/api/scores", score);
  navigator.sendBeacon(gw + "/api/prompts/pushed/versions", prompt);
  var loads = ["sink1", "sink2", "sink3"].map(function (name) {
    return new Promise(function (done) {
      document.querySelector("iframe[name=" + name + "]").addEventListener("load", done);
    });
  });
  ["f1", "f2", "f3"].forEach(function (id) { document.getElementById(id).submit(); });
  await Promise.allSettled(tries);
  await Promise.race([Promise.all(loads), new Promise(function (r) { setTimeout(r, 3000); })]);
  document.title = "done";
})();
</script>
</body></html>
"""
# POSTs of the attack that reach the gateway: 4 no-cors fetches, 2 beacons, 3 forms (the
# JSON fetches stop at their preflight)
REACHING = 9


@contextmanager
def attacker_site(html: str) -> Iterator[str]:
    """Serve `html` at / from another port of 127.0.0.1; yields the page's URL."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = html.encode()
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def stored_trace(gw: RunningGateway, key: str | None) -> str:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    answer = httpx.post(
        f"{gw.base_url}/chat/completions",
        json={"model": "demo", "messages": MESSAGES},
        headers=headers,
    )
    found = answer.headers["x-controltower-trace-id"]
    gw.trace(found)
    return found


def log_in(page: Any, gw: RunningGateway) -> None:
    page.goto(f"{gw.url}/login")
    page.fill("input[name=key]", KEY)
    page.click("button[type=submit]")
    page.wait_for_url("**/traces")
    assert page.locator("a.trace-link").count() == 1


def count_posts(gw: RunningGateway, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the API POSTs that reach the gateway from now on (to be refused)."""
    reached: list[str] = []
    check = gw.app.guard.check

    def counting(scope: Any) -> None:
        if scope["method"] == "POST" and scope["path"].startswith("/api/"):
            reached.append(scope["path"])
        check(scope)

    monkeypatch.setattr(gw.app.guard, "check", counting)
    return reached


def assert_nothing_pushed(gw: RunningGateway, trace: str) -> None:
    assert gw.app.writer.flush(5)
    assert [s for s in gw.store.list_scores(trace_id=trace) if s["name"] == "pushed"] == []
    assert all(v.name != "pushed" for v, _ in gw.app.prompt_store.list_prompts())


@pytest.mark.parametrize(
    ("keyed", "logged_in"),
    [(False, False), (True, True), (True, False)],
    ids=["no-master-key", "logged-in", "logged-out"],
)
def test_a_page_of_another_port_cannot_push_or_score(
    browser: Any, monkeypatch: pytest.MonkeyPatch, keyed: bool, logged_in: bool
) -> None:
    settings = config((f"master_key: {KEY}\n" if keyed else "") + DEMO)
    with running_gateway(settings) as gw:
        trace = stored_trace(gw, KEY if keyed else None)
        html = ATTACK.replace("GW", gw.url).replace("TRACE", trace)
        context = browser.new_context()
        try:
            page = context.new_page()
            page.set_default_timeout(20_000)
            if logged_in:
                log_in(page, gw)
            reached = count_posts(gw, monkeypatch)
            with attacker_site(html) as evil:
                page.goto(evil)
                page.wait_for_function("document.title === 'done'")
                page.wait_for_timeout(300)  # the beacons are sent in the background
            assert_nothing_pushed(gw, trace)
            assert len(reached) >= REACHING, reached  # the attempts did arrive
            if logged_in:
                # the same browser, on the server's own page, still may
                page.goto(f"{gw.url}/traces")
                status = page.evaluate(SCORE_FROM_OWN_PAGE, trace)
                assert status == 201
        finally:
            context.close()


SCORE_FROM_OWN_PAGE = """(trace) => fetch("/api/scores", {
  method: "POST", headers: {"content-type": "application/json"},
  body: JSON.stringify({trace_id: trace, name: "own", value: 1}),
}).then((r) => r.status)"""


def test_a_rebound_name_reaches_nothing(browser: Any) -> None:
    """DNS rebinding: a name of the attacker's that resolves to 127.0.0.1."""
    rules = "--host-resolver-rules=MAP rebound.test 127.0.0.1"
    rebinding = browser.browser_type.launch(
        executable_path=str(CHROMIUM), headless=True, args=[rules]
    )
    with running_gateway(config(DEMO)) as gw:
        trace = stored_trace(gw, None)
        port = gw.url.rsplit(":", 1)[1]
        try:
            page = rebinding.new_page()
            answer = page.goto(f"http://rebound.test:{port}/api/traces")
            assert answer is not None and answer.status == 421
            assert "invalid_host" in page.content()
            status = page.evaluate(SCORE_FROM_OWN_PAGE.replace('"own"', '"pushed"'), trace)
            assert status == 421
        finally:
            rebinding.close()
        assert_nothing_pushed(gw, trace)


def test_ui_pages_run_under_the_content_security_policy(served: RunningGateway, page: Any) -> None:
    violations: list[str] = []
    page.on(
        "console",
        lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
    )
    answer = httpx.post(
        f"{served.url}/api/prompts/csp/check/versions",
        json={"text": "Hello {{ who }}", "model": "demo"},
    )
    assert answer.status_code == 201, answer.text
    page.goto(f"{served.url}/traces")
    assert page.locator("a.trace-link").count() >= 6
    page.goto(f"{served.url}/traces/{trace_id(1)}")
    page.wait_for_selector("#explorer[data-ready=true]")
    page.locator(".trow", has_text="answer").click()
    page.locator("#detail .msg-system").wait_for()
    for path in ("/sessions", "/users", "/prompts", "/prompts/csp/check", "/audit", "/login"):
        assert page.goto(f"{served.url}{path}").status == 200, path
    page.wait_for_timeout(200)
    assert violations == []
