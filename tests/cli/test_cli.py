"""The `controltower` command as a user runs it: a real process, a real SQLite file."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai
import orjson
import pytest

from controltower.store import open_store
from controltower.store.engine import HEAD_REVISION
from tests.conftest import config, running_gateway

CLI = [sys.executable, "-m", "controltower"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}
    )


def client_for(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)


class Served:
    """What a finished `serving` block left: the exit code and what the server logged."""

    returncode: int | None = None
    stderr = ""


@contextmanager
def serving(*args: str, env: dict[str, str]) -> Iterator[tuple[str, Served]]:
    """`controltower serve` in its own process until it answers /health; SIGTERM after."""
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), *args],
        text=True,
        env={**os.environ, **env},
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    served = Served()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url, served
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        served.stderr = proc.communicate(timeout=20)[1]
        served.returncode = proc.returncode


def test_serve_demo_records_traces_readable_from_the_terminal(tmp_path: Path) -> None:
    env = {"CONTROLTOWER_DATABASE_URL": f"sqlite:///{tmp_path / 'ct.db'}"}
    with serving(env=env) as (url, proc), client_for(url) as c:
        raw = c.chat.completions.with_raw_response.create(
            model="demo", messages=[{"role": "user", "content": "quick start"}]
        )
        assert raw.parse().choices[0].message.content == "quick start"
        trace_id = raw.headers["x-controltower-trace-id"]
    # uvicorn shuts down gracefully, then re-raises SIGTERM; the writer flushed on the way
    assert proc.returncode in (0, -signal.SIGTERM)

    listed = run("traces", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert [t["id"] for t in orjson.loads(listed.stdout)["data"]] == [trace_id]
    table = run("traces", "list", env=env)
    assert trace_id in table.stdout
    shown = run("traces", "show", trace_id, env=env)
    assert shown.returncode == 0 and "chat demo" in shown.stdout
    assert run("traces", "show", "nope", env=env).returncode == 1


def test_config_check_names_file_line_field_and_fix(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("models:\n  - name: a\n    deployments: [{provider: mock, model: m}]\n")
    ok = run("config", "check", str(good))
    assert ok.returncode == 0 and "1 models, 1 deployments" in ok.stdout

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "models:\n"
        "  - name: a\n"
        "    deployments:\n"
        "      - provider: nosuch\n"
        "        model: m\n"
        "        wieght: 2\n"
    )
    result = run("config", "check", str(bad))
    assert result.returncode == 2
    assert f"{bad}:6 models[0].deployments[0].wieght" in result.stderr
    assert "did you mean `weight`?" in result.stderr

    bad.write_text("models:\n  - name: a\n    deployments: [{provider: nosuch, model: m}]\n")
    result = run("config", "check", str(bad))
    assert "unknown provider 'nosuch'" in result.stderr and "anthropic" in result.stderr

    served = run("serve", "--config", str(bad), "--port", str(free_port()))
    assert served.returncode == 2 and "unknown provider" in served.stderr


def test_serve_refuses_other_interfaces_without_a_master_key(tmp_path: Path) -> None:
    env = {"CONTROLTOWER_DATABASE_URL": f"sqlite:///{tmp_path / 'ct.db'}"}
    result = run("serve", "--host", "0.0.0.0", "--port", str(free_port()), env=env)
    assert result.returncode == 2
    assert "needs a master key" in result.stderr


def test_db_upgrade(tmp_path: Path) -> None:
    env = {"CONTROLTOWER_DATABASE_URL": f"sqlite:///{tmp_path / 'new' / 'ct.db'}"}
    result = run("db", "upgrade", env=env)
    assert result.returncode == 0 and f"revision {HEAD_REVISION}" in result.stdout


def test_provider_keys_stay_out_of_traces_logs_and_answers(tmp_path: Path) -> None:
    secret = "sk-very-secret-0123456789"
    with running_gateway(
        config("models: [{name: up, deployments: [{provider: mock, model: m}]}]")
    ) as upstream:
        cfg = tmp_path / "ct.yaml"
        cfg.write_text(
            "models:\n"
            "  - name: relay\n"
            "    deployments:\n"
            "      - provider: openai\n"
            "        model: up\n"
            f"        api_base: {upstream.base_url}\n"
            "        api_key: ${UPSTREAM_KEY}\n"
        )
        db = tmp_path / "ct.db"
        env = {"CONTROLTOWER_DATABASE_URL": f"sqlite:///{db}", "UPSTREAM_KEY": secret}
        with (
            serving("--config", str(cfg), "--log-level", "debug", env=env) as (url, proc),
            client_for(url) as c,
        ):
            raw = c.chat.completions.with_raw_response.create(
                model="relay", messages=[{"role": "user", "content": "relayed"}]
            )
            assert raw.parse().choices[0].message.content == "relayed"
            assert secret not in raw.text
    assert secret not in proc.stderr
    for path in tmp_path.glob("ct.db*"):
        assert secret.encode() not in path.read_bytes()
    store = open_store(f"sqlite:///{db}")
    try:
        trace = store.get_trace(raw.headers["x-controltower-trace-id"])
    finally:
        store.close()
    assert trace is not None and trace["spans"][0]["provider"] == "openai"


@pytest.mark.postgres
def test_serve_on_postgresql(postgres_url: str) -> None:
    with (
        serving(env={"CONTROLTOWER_DATABASE_URL": postgres_url}) as (url, _),
        client_for(url) as c,
    ):
        raw = c.chat.completions.with_raw_response.create(
            model="demo", messages=[{"role": "user", "content": "to postgres"}], stream=True
        )
        assert "".join(ch.choices[0].delta.content or "" for ch in raw.parse() if ch.choices)
        trace_id = raw.headers["x-controltower-trace-id"]
    store = open_store(postgres_url)
    try:
        trace = store.get_trace(trace_id)
    finally:
        store.close()
    assert trace is not None and trace["output"]["content"] == "to postgres"


def test_filter_traces_delete_a_user_and_apply_retention(tmp_path: Path) -> None:
    from tests.store.records import make_record

    db = f"sqlite:///{tmp_path / 'ct.db'}"
    store = open_store(db)
    records = [make_record(n) for n in range(3)]
    records[0].trace.user_id = "ann"
    store.write(records)
    store.close()
    env = {"CONTROLTOWER_DATABASE_URL": db}
    listed = run("traces", "list", "--user", "ann", "--json", env=env)
    assert [t["user_id"] for t in orjson.loads(listed.stdout)["data"]] == ["ann"]
    bad = run("traces", "list", "--since", "yesterday-ish", env=env)
    assert bad.returncode == 2 and "since must be an ISO date" in bad.stderr
    deleted = run("users", "delete", "ann", "--yes", env=env)
    assert orjson.loads(deleted.stdout)["deleted"] == {
        "traces": 1,
        "spans": 2,
        "scores": 0,
        "spend": 0,
    }
    (tmp_path / "keep.yaml").write_text("retention: {days: 30}\n")
    swept = run("retention", "run", "-c", str(tmp_path / "keep.yaml"), env=env)
    assert orjson.loads(swept.stdout)["deleted"]["traces"] == 2  # made in 2023


def test_serve_with_workers_shares_one_store(tmp_path: Path) -> None:
    config_file = tmp_path / "ct.yaml"
    config_file.write_text(
        "models:\n  - name: echo\n    deployments: [{provider: mock, model: echo-model}]\n"
    )
    env = {"CONTROLTOWER_DATABASE_URL": f"sqlite:///{tmp_path / 'ct.db'}"}
    ids = set()
    workers = ("--workers", "2", "-c", str(config_file))
    with serving(*workers, env=env) as (url, proc), client_for(url) as c:
        for n in range(6):
            raw = c.chat.completions.with_raw_response.create(
                model="echo", messages=[{"role": "user", "content": f"call {n}"}]
            )
            ids.add(raw.headers["x-controltower-trace-id"])
    assert proc.returncode in (0, -signal.SIGTERM), proc.stderr
    listed = orjson.loads(run("traces", "list", "--json", env=env).stdout)["data"]
    assert {t["id"] for t in listed} == ids  # each worker flushed its writer on shutdown
