"""`target: {http: ...}`: an application's endpoint on a real local HTTP server, called by
the eval runner in a real `controltower eval run` process, and by the caller directly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from controltower.errors import RateLimited
from controltower.evals.spec import EvalFileError, parse_eval
from controltower.evals.targets import TargetError
from controltower.gateway.http_caller import HttpTargetCaller, decoded

CLI = [sys.executable, "-m", "controltower"]
TOKEN = "s3cret-token"


class App:
    """What the application's server saw, and how often it refused each question."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []
        self.headers: list[dict[str, str]] = []
        self.refused: dict[str, int] = {}
        self.lock = threading.Lock()


def _handler(app: App) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep the test output clean
            pass

        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            self._send(200, f"you asked {query.get('q', ['?'])[0]}".encode(), "text/plain")

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = json.loads(self.rfile.read(length) or b"null")
            with app.lock:
                app.bodies.append(body)
                app.headers.append({k.lower(): v for k, v in self.headers.items()})
            path = urlsplit(self.path).path
            if path == "/slow":
                time.sleep(1.5)
            if path == "/unavailable":
                self._send(503, b"busy", "text/plain", retry_after="7")
                return
            if self.headers.get("authorization") != f"Bearer {TOKEN}":
                self._send(401, b'{"error": "who are you?"}')
                return
            question = str(body.get("question", ""))
            if "busy" in question and self._refuse(question):
                self._send(429, b'{"error": "slow down"}', retry_after="0")
                return
            if "broken" in question:
                self._send(500, b'{"error": "the database is down"}')
                return
            text = "Refunds within 30 days." if "refund" in question else "No idea."
            self._send(200, orjson.dumps({"answer": {"text": text, "vars": body.get("vars")}}))

        def _refuse(self, question: str) -> bool:
            with app.lock:
                app.refused[question] = app.refused.get(question, 0) + 1
                return app.refused[question] <= 2  # twice, then it answers

        def _send(
            self,
            status: int,
            data: bytes,
            kind: str = "application/json",
            retry_after: str | None = None,
        ) -> None:
            self.send_response(status)
            self.send_header("content-type", kind)
            self.send_header("content-length", str(len(data)))
            if retry_after is not None:
                self.send_header("retry-after", retry_after)
            self.end_headers()
            self.wfile.write(data)

    return Handler


@pytest.fixture
def app() -> Iterator[tuple[str, App]]:
    """The application on a free 127.0.0.1 port, in a thread."""
    state = App()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def _write(tmp: Path, url: str, items: list[dict[str, Any]], extra: str = "") -> Path:
    (tmp / "data.jsonl").write_text("".join(orjson.dumps(i).decode() + "\n" for i in items))
    spec = tmp / "app.yaml"
    spec.write_text(
        textwrap.dedent(f"""\
        name: app
        dataset: data.jsonl
        target:
          http:
            url: {url}/answer
            headers: {{Authorization: "Bearer ${{API_TOKEN}}", X-Team: "${{TEAM:-support}}"}}
            body: {{question: "{{{{ input }}}}", vars: "{{{{ vars }}}}"}}
            output: answer.text
        scorers:
          - contains: "{{{{ expected }}}}"
        concurrency: 4
        """)
        + extra
    )
    return spec


def _cli(
    tmp: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in ("API_TOKEN", "GITHUB_ACTIONS")}
    full["CONTROLTOWER_DATABASE_URL"] = f"sqlite:///{tmp / 'ct.db'}"
    return subprocess.run(
        [*CLI, *args],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=120,
        env={**full, **(env or {})},
    )


def test_an_eval_calls_the_endpoint_with_its_templates_and_headers(
    tmp_path: Path, app: tuple[str, App]
) -> None:
    url, state = app
    items = [
        {"id": "r", "input": "Can I get a refund?", "expected": "30 days"},
        {"id": "s", "input": "Where is my parcel?", "expected": "30 days"},
        {"id": "v", "variables": {"order": 7}, "input": "refund order 7", "expected": "30 days"},
    ]
    _write(tmp_path, url, items)
    done = _cli(
        tmp_path, "eval", "run", "app.yaml", "-q", "--json", "r.json", env={"API_TOKEN": TOKEN}
    )
    assert done.returncode == 0, done.stderr
    run = orjson.loads((tmp_path / "r.json").read_bytes())["runs"][0]
    assert run["summary"]["scorers"]["contains"]["mean"] == pytest.approx(2 / 3)
    assert run["record"]["target"]["http"]["url"] == f"{url}/answer"
    assert "headers" not in run["record"]["target"]["http"]  # the token is not recorded
    assert TOKEN not in (tmp_path / "r.json").read_text()
    assert {h["authorization"] for h in state.headers} == {f"Bearer {TOKEN}"}
    assert {h["x-team"] for h in state.headers} == {"support"}  # the ${TEAM:-support} default
    by_question = {b["question"]: b for b in state.bodies}
    assert by_question["refund order 7"]["vars"] == {"order": 7}  # a mapping, not its text
    assert by_question["Can I get a refund?"]["vars"] == {}


def test_rate_limits_are_waited_out_and_failures_are_item_errors(
    tmp_path: Path, app: tuple[str, App]
) -> None:
    url, state = app
    items = [
        {"id": "ok", "input": "refund?", "expected": "30 days"},
        {"id": "busy", "input": "busy refund?", "expected": "30 days"},
        {"id": "broken", "input": "broken refund?", "expected": "30 days"},
    ]
    _write(tmp_path, url, items, "max_error_rate: 0.5\n")
    done = _cli(
        tmp_path, "eval", "run", "app.yaml", "-q", "--json", "r.json", env={"API_TOKEN": TOKEN}
    )
    assert done.returncode == 0, done.stderr
    run = orjson.loads((tmp_path / "r.json").read_bytes())["runs"][0]
    summary = run["summary"]
    assert state.refused == {"busy refund?": 3}  # two 429s, then an answer
    assert summary["rate_limited"] == 2
    assert summary["target_errors"] == 1 and summary["scorers"]["contains"]["mean"] == 1.0
    shown = _cli(tmp_path, "eval", "show", run["id"], "--json")
    results = {r["item"]: r for r in orjson.loads(shown.stdout)["results"]}
    assert results["broken"]["status"] == "error"
    assert "answered 500" in results["broken"]["error"]
    assert "the database is down" in results["broken"]["error"]
    assert results["busy"]["status"] == "ok"


def test_a_wrong_token_fails_every_item_as_an_infrastructure_error(
    tmp_path: Path, app: tuple[str, App]
) -> None:
    url, _ = app
    _write(tmp_path, url, [{"id": "r", "input": "refund?", "expected": "30 days"}])
    done = _cli(tmp_path, "eval", "run", "app.yaml", "-q", env={"API_TOKEN": "wrong"})
    assert done.returncode == 3, done.stderr
    assert "over max_error_rate" in done.stderr


def test_an_unset_variable_in_a_header_is_a_problem_of_the_file(
    tmp_path: Path, app: tuple[str, App]
) -> None:
    url, state = app
    _write(tmp_path, url, [{"id": "r", "input": "refund?", "expected": "30 days"}])
    done = _cli(tmp_path, "eval", "run", "app.yaml", "-q")
    assert done.returncode == 2
    assert (
        "app.yaml:6 target.http.headers.Authorization: environment variable API_TOKEN is not "
        "set; fix: export API_TOKEN=... before the run" in done.stderr
    )
    assert state.bodies == []  # nothing was called


def test_the_http_fields_are_checked_whole() -> None:
    data = {
        "name": "x",
        "dataset": [{"input": "a"}],
        "target": {
            "http": {
                "url": "ftp://x",
                "method": "HEAD",
                "headers": {"A": "b\nInjected: yes"},
                "body": {"q": "{{ input"},
            }
        },
        "scorers": [{"contains": "a"}],
    }
    with pytest.raises(EvalFileError) as failed:
        parse_eval(data)
    text = str(failed.value)
    assert "target.http.url: must be an http:// or https:// URL" in text
    assert "target.http.method: must be one of GET, POST, PUT, PATCH, DELETE" in text
    assert "target.http.headers.A: holds a line break" in text
    assert "target.http.body.q: template error" in text


async def test_the_caller_reads_text_sends_get_queries_and_maps_failures(
    app: tuple[str, App],
) -> None:
    url, _ = app
    caller = HttpTargetCaller()
    try:
        status, data = await caller.call("GET", f"{url}/search", {"q": "refunds"}, {}, 5)
        assert (status, data) == (200, "you asked refunds")
        status, data = await caller.call("POST", f"{url}/answer", {"question": "x"}, {}, 5)
        assert (status, data) == (401, {"error": "who are you?"})
        with pytest.raises(RateLimited) as limited:
            await caller.call("POST", f"{url}/unavailable", {}, {}, 5)
        assert limited.value.retry_after == 7.0
        with pytest.raises(TargetError, match=r"did not answer within 0\.3 s"):
            await caller.call("POST", f"{url}/slow", {}, {}, 0.3)
        with pytest.raises(TargetError, match="line break"):
            await caller.call("POST", f"{url}/answer", {}, {"X": "a\r\nB: c"}, 5)
    finally:
        await caller.aclose()
    closed = HttpTargetCaller()
    with pytest.raises(TargetError, match="could not be reached"):
        await closed.call("POST", "http://127.0.0.1:9/answer", {}, {}, 5)
    await closed.aclose()


@given(
    st.binary(max_size=300),
    st.one_of(st.none(), st.sampled_from(["application/json", "text/plain", "x"])),
)
def test_any_answer_body_decodes_to_json_or_text(raw: bytes, kind: str | None) -> None:
    found = decoded(raw, kind)
    assert found is None or isinstance(found, str | int | float | bool | list | dict)
