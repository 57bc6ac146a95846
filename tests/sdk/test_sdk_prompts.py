"""ct.get_prompt: fetched from a real server or the local store, cached, refreshed, fallback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import controltower as ct
from controltower.domain.prompt import PromptContent, VariableSpec
from controltower.errors import NotFound
from controltower.prompts import PromptRenderError
from controltower.sdk import prompts
from controltower.store import open_prompt_store
from tests.conftest import DEMO, RunningGateway, config, running_gateway

GREET = {
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Say hi to {{ who }}."},
    ],
    "model": "demo",
    "params": {"temperature": 0.2},
    "variables": {"who": {"type": "string", "required": True}},
}


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    prompts.clear_cache()
    yield
    prompts.clear_cache()


@pytest.fixture
def server() -> Iterator[tuple[RunningGateway, httpx.Client]]:
    """A real server holding greet v1 and v2, `production` on v1; the SDK pointed at it."""
    with running_gateway(config(DEMO)) as gw, httpx.Client(base_url=gw.url) as http:
        push(http, "greet", GREET)
        push(http, "greet", {**GREET, "params": {"temperature": 0.9}})
        move(http, "greet", "production", 1)
        ct.init(url=gw.url, flush_interval_s=0.05)
        yield gw, http


def push(http: httpx.Client, name: str, content: dict[str, Any]) -> None:
    assert http.post(f"/api/prompts/{name}/versions", json=content).status_code == 201


def move(http: httpx.Client, name: str, label: str, version: int) -> None:
    answer = http.put(f"/api/prompts/{name}/labels/{label}", json={"version": version})
    assert answer.status_code == 200, answer.text


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def eventually(check: Any) -> Any:
    """Poll until check() is truthy (at most 10 s); its value."""
    deadline = time.monotonic() + 10
    while not (found := check()):
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.01)
    return found


def test_by_label_by_version_and_latest(server: Any) -> None:
    production = ct.get_prompt("greet", label="production")
    assert (production.name, production.version, production.label) == ("greet", 1, "production")
    assert (production.model, production.params) == ("demo", {"temperature": 0.2})
    assert ct.get_prompt("greet", version=2).params == {"temperature": 0.9}
    latest = ct.get_prompt("greet")
    assert (latest.version, latest.label, latest.is_fallback) == (2, "latest", False)


def test_render_gives_messages_model_and_params(server: Any) -> None:
    rendered = ct.get_prompt("greet", label="production").render(who="Ada")
    assert rendered == {
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Say hi to Ada."},
        ],
        "model": "demo",
        "params": {"temperature": 0.2},
    }
    with pytest.raises(PromptRenderError, match="`who` is required"):
        ct.get_prompt("greet", label="production").render()


def test_a_cached_prompt_is_served_until_its_ttl(server: Any) -> None:
    _, http = server
    first = ct.get_prompt("greet", label="production")
    move(http, "greet", "production", 2)
    assert ct.get_prompt("greet", label="production") is first


def test_a_stale_prompt_is_answered_at_once_and_refreshed_in_the_background(
    server: Any,
) -> None:
    _, http = server
    assert ct.get_prompt("greet", label="production", ttl_s=0).version == 1
    move(http, "greet", "production", 2)
    # the stale entry comes back while the refresh runs; then the new version does
    assert ct.get_prompt("greet", label="production", ttl_s=0).version in (1, 2)
    eventually(lambda: ct.get_prompt("greet", label="production", ttl_s=0).version == 2)


def test_an_unknown_prompt_is_a_clear_error_unless_there_is_a_fallback(server: Any) -> None:
    with pytest.raises(NotFound, match="nobody"):
        ct.get_prompt("nobody")
    with pytest.raises(NotFound, match="staging"):
        ct.get_prompt("greet", label="staging")
    found = ct.get_prompt("nobody", fallback=[{"role": "user", "content": "Hi {{ who }}"}])
    assert found.is_fallback and found.version is None
    assert found.render(who="Bo")["messages"] == [{"role": "user", "content": "Hi Bo"}]


def test_the_fallback_serves_when_the_server_cannot_be_reached() -> None:
    ct.init(url=closed_port_url(), enabled=False)
    with pytest.raises(prompts.PromptUnavailable, match="cannot be reached"):
        ct.get_prompt("greet")
    fallback = {
        "model": "demo",
        "params": {"max_tokens": 50},
        "variables": {"who": {"type": "string", "default": "you"}},
        "text": "Hello {{ who }}",
    }
    found = ct.get_prompt("greet", fallback=fallback)
    assert found.is_fallback
    assert found.render() == {"text": "Hello you", "model": "demo", "params": {"max_tokens": 50}}
    assert ct.get_prompt("other", fallback="Plain {{ x }}").render(x=1)["text"] == "Plain 1"


def test_a_fallback_that_is_not_a_valid_prompt_fails_loudly() -> None:
    ct.init(url=closed_port_url(), enabled=False)
    with pytest.raises(Exception, match="fallback"):
        ct.get_prompt("greet", fallback={"messages": "not a list"})


def test_the_server_coming_back_replaces_the_fallback(
    server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = prompts._fetch_http
    down = [True]

    def flaky(*args: Any) -> Any:
        if down[0]:
            raise prompts.PromptUnavailable("down for the test")
        return real(*args)

    monkeypatch.setattr(prompts, "_fetch_http", flaky)
    assert ct.get_prompt("greet", fallback="Hi", ttl_s=0).is_fallback
    down[0] = False
    eventually(lambda: not ct.get_prompt("greet", fallback="Hi", ttl_s=0).is_fallback)
    assert ct.get_prompt("greet").version == 2


def test_embedded_mode_reads_the_local_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'local.db'}"
    store = open_prompt_store(url)
    try:
        content = PromptContent(
            text="Summarise: {{ doc }}",
            model="fast",
            variables={"doc": VariableSpec(required=True)},
        )
        store.create_version("summary", content, message="first", author="me")
        store.move_label("summary", "production", 1, actor="me")
    finally:
        store.engine.dispose()
    ct.init(database_url=url, enabled=False)
    found = ct.get_prompt("summary", label="production")
    assert (found.version, found.model, found.text) == (1, "fast", "Summarise: {{ doc }}")
    assert found.render(doc="x")["text"] == "Summarise: x"
    with pytest.raises(NotFound):
        ct.get_prompt("summary", version=9)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_refreshes_on_its_own_connections(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'local.db'}"
    store = open_prompt_store(url)
    content = PromptContent(text="v1 {{ x }}", variables={"x": VariableSpec()})
    store.create_version("p", content, message="", author=None)
    store.move_label("p", "production", 1, actor=None)
    ct.init(database_url=url, enabled=False)
    assert ct.get_prompt("p", label="production", ttl_s=0).version == 1  # opens the store
    store.create_version("p", PromptContent(text="v2 {{ x }}"), message="", author=None)
    store.move_label("p", "production", 2, actor=None)
    store.close()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the refresher thread is its own, and so are its connections
        try:
            deadline = time.monotonic() + 10
            while ct.get_prompt("p", label="production", ttl_s=0).version != 2:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            os.write(write, b"1")
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.close(read)
    os.waitpid(pid, 0)
    assert answer == b"1"
    # the parent's cache refreshes the same way, on the connections it kept
    eventually(lambda: ct.get_prompt("p", label="production", ttl_s=0).version == 2)


def test_a_label_and_a_version_together_are_refused(server: Any) -> None:
    with pytest.raises(ValueError, match="not both"):
        ct.get_prompt("greet", label="production", version=1)


def test_importing_the_sdk_does_not_import_jinja_or_sqlalchemy() -> None:
    code = (
        "import sys, controltower as ct; ct.get_prompt; ct.Prompt; "
        "print(sorted(m for m in ('jinja2', 'sqlalchemy', 'yaml') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_split_label_gives_each_user_the_arm_the_gateway_would(server: Any) -> None:
    from controltower.prompts.content import pick_version

    _, http = server
    arms = {"arms": [{"version": 1, "weight": 50}, {"version": 2, "weight": 50}]}
    assert http.put("/api/prompts/greet/labels/canary/split", json=arms).status_code == 200
    seen = {}
    for n in range(200):
        got = ct.get_prompt("greet", label="canary", user_id=f"u{n}")
        assert got.label == "canary"
        seen[f"u{n}"] = got.version
    assert set(seen.values()) == {1, 2}  # both arms serve
    again = {user: ct.get_prompt("greet", label="canary", user_id=user).version for user in seen}
    assert again == seen  # sticky
    cached = prompts._CACHE[(server[0].url, "greet", "canary", None)]
    assert cached.label is not None
    assert all(pick_version(cached.label, f"user:{user}") == v for user, v in seen.items())
    with ct.span("turn"):
        ct.update_trace(session_id="s-9")
        in_trace = ct.get_prompt("greet", label="canary").version
    assert in_trace == pick_version(cached.label, "session:s-9")
