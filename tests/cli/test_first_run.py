"""The first minutes of a new user: where serve says it is, a busy port, which database a
command reads, and a table that fits a plain terminal."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import httpx
import orjson

from tests.cli.test_cli import client_for, free_port, run, serving


def test_serve_says_where_the_ui_and_the_api_are(tmp_path: Path) -> None:
    env = {"CONTROLTOWER_DATABASE_URL": f"sqlite:///{tmp_path / 'ct.db'}"}
    with serving(env=env) as (url, served), client_for(url) as c:
        c.chat.completions.create(model="demo", messages=[{"role": "user", "content": "hi"}])
    assert f"UI: {url}/" in served.stderr and f"API: {url}/v1" in served.stderr
    assert f"database: sqlite:///{tmp_path / 'ct.db'}" in served.stderr
    assert "models: demo" in served.stderr


def test_a_busy_port_is_named_with_the_fix_before_anything_says_serving(tmp_path: Path) -> None:
    env = {"CONTROLTOWER_DATABASE_URL": f"sqlite:///{tmp_path / 'ct.db'}"}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("serve", "--port", str(port), env=env)
    assert result.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "--port" in result.stderr and "CONTROLTOWER_PORT" in result.stderr
    assert "UI:" not in result.stderr  # it never claimed to serve


def test_the_port_can_come_from_the_environment(tmp_path: Path) -> None:
    port = free_port()
    env = {"CONTROLTOWER_DATABASE_URL": f"sqlite:///{tmp_path / 'ct.db'}"}
    result = run("serve", "--help", env={**env, "CONTROLTOWER_PORT": str(port)})
    assert "CONTROLTOWER_PORT" in result.stdout


def test_a_read_never_creates_an_empty_database(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here.db"
    url = f"sqlite:///{missing}"
    for args in (["traces", "list"], ["traces", "show", "x"], ["prompts", "list"]):
        result = run(*args, "--database-url", url)
        assert result.returncode == 2, (args, result.stderr)
        assert f"no database at {missing}" in result.stderr
        assert "--database-url" in result.stderr
    assert not missing.exists()
    # a write may create it, and says where
    made = run("db", "upgrade", "--database-url", url)
    assert made.returncode == 0 and f"database: {url}" in made.stderr and missing.exists()


def test_every_store_command_names_its_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ct.db'}"
    assert run("db", "upgrade", "--database-url", url).returncode == 0
    listed = run("traces", "list", "--json", "--database-url", url)
    assert listed.returncode == 0 and orjson.loads(listed.stdout)["data"] == []
    assert f"database: {url}" in listed.stderr


def test_traces_list_fits_an_80_column_terminal(tmp_path: Path) -> None:
    env = {"CONTROLTOWER_DATABASE_URL": f"sqlite:///{tmp_path / 'ct.db'}"}
    with serving(env=env) as (url, _), client_for(url) as c:
        for i in range(3):
            c.chat.completions.create(
                model="demo",
                messages=[{"role": "user", "content": f"a long question number {i} " * 20}],
                user=f"someone-with-a-long-user-name-{i}@example.com",
            )
    table = run("traces", "list", env={**env, "COLUMNS": "80"})
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert len(lines) >= 4
    assert max(len(line) for line in lines) <= 80, table.stdout


def test_behind_a_tls_proxy_the_login_cookie_is_secure(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("master_key: sk-proxy\nproxy_headers: true\n")
    env = {"CONTROLTOWER_DATABASE_URL": f"sqlite:///{tmp_path / 'ct.db'}"}
    with serving("--config", str(cfg), env=env) as (url, _), httpx.Client(base_url=url) as c:
        proxied = {"x-forwarded-proto": "https"}
        form = c.get("/login", headers=proxied)
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token is not None and "Secure" in form.headers["set-cookie"]
        # the client is on plain http here: hand back the Secure cookie as the browser would
        csrf = form.headers["set-cookie"].split(";", 1)[0]
        c.cookies.clear()
        answer = c.post(
            "/login",
            data={"key": "sk-proxy", "csrf": token.group(1)},
            headers={**proxied, "cookie": csrf},
        )
        assert answer.status_code == 303, answer.text
        assert "Secure" in answer.headers["set-cookie"]
        # without the proxy's word the same server sets no Secure flag
        plain = httpx.Client(base_url=url)
        form = plain.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token is not None
        answer = plain.post("/login", data={"key": "sk-proxy", "csrf": token.group(1)})
        assert answer.status_code == 303 and "Secure" not in answer.headers["set-cookie"]
        plain.close()


def test_control_characters_in_trace_data_never_reach_the_terminal(tmp_path: Path) -> None:
    env = {"CONTROLTOWER_DATABASE_URL": f"sqlite:///{tmp_path / 'ct.db'}"}
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    span = {
        "id": "b7ad6b7169203331",
        "trace_id": trace_id,
        "name": "a\tb\nc\x1b[31mRED\x1b[0m\x07",
        "start_us": 1_700_000_000_000_000,
        "error": "bad\x1b]0;title\x07",
        "status": "error",
    }
    with serving(env=env) as (url, _):
        sent = httpx.post(f"{url}/api/ingest", json={"batch": [{"type": "span", "body": span}]})
        assert sent.status_code == 200, sent.text
    listed = run("traces", "list", env={**env, "COLUMNS": "80"})
    shown = run("traces", "show", trace_id, env=env)
    for out in (listed.stdout, shown.stdout):
        assert "\x1b" not in out and "\x07" not in out and "\t" not in out
    assert "\\x1b[31mRED" in shown.stdout
    assert max(len(line) for line in listed.stdout.splitlines()) <= 80
