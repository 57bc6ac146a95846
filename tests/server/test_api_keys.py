"""API keys end to end: made over REST and the CLI, used with the official client, scoped
to their project, limited by role and models, refused once revoked on every replica."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest
from click.testing import CliRunner

from controltower.cli.main import main
from controltower.store import open_store
from tests.conftest import RunningGateway, config, running_gateway

MASTER = "sk-master-test"
CONFIG = f"""
master_key: {MASTER}
models:
  - name: demo
    deployments: [{{provider: mock, model: demo-1, price: {{input: 1.0, output: 2.0}}}}]
  - name: other
    deployments: [{{provider: mock, model: other-1}}]
"""


@pytest.fixture
def gateway(sqlite_url: str) -> Iterator[RunningGateway]:
    store = open_store(sqlite_url)
    with running_gateway(config(CONFIG), store) as gw:
        yield gw


def api(gw: RunningGateway, method: str, path: str, key: str = MASTER, **kw: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}", **kw.pop("headers", {})}
    return httpx.request(method, gw.url + path, headers=headers, timeout=10, **kw)


def make_key(gw: RunningGateway, key: str = MASTER, **fields: Any) -> dict[str, Any]:
    answer = api(gw, "POST", "/api/keys", key, json={"project": "shop", **fields})
    assert answer.status_code == 201, answer.text
    made: dict[str, Any] = answer.json()
    return made


def chat(client: openai.OpenAI, model: str = "demo") -> Any:
    return client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "hi"}]
    )


def test_a_key_calls_the_gateway_in_its_project_and_only_its_models(
    gateway: RunningGateway,
) -> None:
    made = make_key(gateway, name="checkout", models=["demo"])
    assert made["secret"].startswith("ct-") and made["prefix"] == made["secret"][:10]
    client = gateway.client(made["secret"])
    raw = chat(client)
    trace = gateway.trace(raw.headers["x-controltower-trace-id"])
    assert trace["project"] == "shop"
    assert trace["spans"][0]["attributes"]["api_key"] == made["id"]
    with pytest.raises(openai.PermissionDeniedError) as refused:
        chat(client, "other")
    assert refused.value.code == "model_not_allowed" and "demo" in refused.value.message
    assert [m.id for m in client.models.list()] == ["demo"]
    # the master key still calls every model, in the default project
    master = chat(gateway.client(MASTER), "other")
    assert gateway.trace(master.headers["x-controltower-trace-id"])["project"] == "default"


def test_roles_limit_what_a_key_may_do(gateway: RunningGateway) -> None:
    writer = make_key(gateway)["secret"]
    gateway.trace(chat(gateway.client(writer)).headers["x-controltower-trace-id"])
    gateway.trace(chat(gateway.client(MASTER)).headers["x-controltower-trace-id"])
    reader = make_key(gateway, role="read")["secret"]
    with pytest.raises(openai.PermissionDeniedError) as refused:
        chat(gateway.client(reader))
    assert refused.value.code == "permission_denied" and "role `read`" in refused.value.message
    traces = api(gateway, "GET", "/api/traces", reader).json()["data"]
    assert traces and {t["project"] for t in traces} == {"shop"}
    other = api(gateway, "GET", "/api/traces?project=default", reader)
    assert other.status_code == 403 and other.json()["error"]["param"] == "project"
    everything = api(gateway, "GET", "/api/traces").json()["data"]
    assert {t["project"] for t in everything} == {"shop", "default"}
    hidden = next(t["id"] for t in everything if t["project"] == "default")
    assert api(gateway, "GET", f"/api/traces/{hidden}", reader).status_code == 404
    score = {"trace_id": hidden, "name": "thumbs", "value": 1}
    assert api(gateway, "POST", "/api/scores", writer, json=score).status_code == 404
    assert api(gateway, "POST", "/api/scores", reader, json=score).status_code == 403
    assert api(gateway, "GET", "/api/keys", writer).status_code == 403
    assert api(gateway, "GET", "/api/audit", writer).status_code == 403
    assert api(gateway, "GET", "/traces", writer).status_code == 403  # the UI: master only


def test_an_ingest_key_only_sends_traces_and_they_land_in_its_project(
    gateway: RunningGateway,
) -> None:
    secret = make_key(gateway, role="ingest")["secret"]
    start = time.time_ns() // 1000
    span = {"id": "a" * 16, "trace_id": "b" * 32, "name": "job", "start_us": start}
    span["end_us"] = start + 1000
    batch = {
        "batch": [
            {"type": "span", "body": span},
            {"type": "trace", "body": {"id": "b" * 32, "project": "elsewhere"}},
            {"type": "score", "body": {"trace_id": "b" * 32, "name": "ok", "value": 1}},
            {"type": "score", "body": {"trace_id": "c" * 32, "name": "ok", "value": 1}},
        ]
    }
    answer = api(gateway, "POST", "/api/ingest", secret, json=batch)
    assert answer.status_code == 400, answer.text  # the score of a trace it cannot see
    assert answer.json()["accepted"] == 3
    assert [e["index"] for e in answer.json()["errors"]] == [3]
    assert gateway.trace("b" * 32)["project"] == "shop"
    assert api(gateway, "GET", "/api/traces", secret).status_code == 403
    with pytest.raises(openai.PermissionDeniedError):
        chat(gateway.client(secret))


def test_unknown_and_revoked_keys_are_refused_and_rotation_retires_the_old_secret(
    gateway: RunningGateway,
) -> None:
    with pytest.raises(openai.AuthenticationError):
        chat(gateway.client("ct-" + "x" * 43))
    made = make_key(gateway)
    rotated = api(gateway, "POST", f"/api/keys/{made['id']}/rotate")
    assert rotated.status_code == 200 and rotated.json()["id"] == made["id"]
    with pytest.raises(openai.AuthenticationError):
        chat(gateway.client(made["secret"]))
    new = rotated.json()["secret"]
    chat(gateway.client(new))
    assert api(gateway, "DELETE", f"/api/keys/{made['id']}").json()["revoked_at"]
    with pytest.raises(openai.AuthenticationError):
        chat(gateway.client(new))
    actions = [e["action"] for e in api(gateway, "GET", "/api/audit?limit=20").json()["data"]]
    assert {"key.create", "key.rotate", "key.revoke"} <= set(actions)


def test_an_admin_key_manages_its_own_project_alone(gateway: RunningGateway) -> None:
    admin = make_key(gateway, role="admin")["secret"]
    make_key(gateway, project="other")
    mine = api(gateway, "POST", "/api/keys", admin, json={"role": "read", "name": "dash"})
    assert mine.status_code == 201 and mine.json()["project"] == "shop"
    assert mine.json()["created_by"].startswith("key:")
    theirs = api(gateway, "POST", "/api/keys", admin, json={"project": "other"})
    assert theirs.status_code == 403
    listed = api(gateway, "GET", "/api/keys", admin).json()["data"]
    assert {k["project"] for k in listed} == {"shop"} and len(listed) == 2
    assert "secret" not in listed[0]
    other_id = next(
        k["id"] for k in api(gateway, "GET", "/api/keys").json()["data"] if k["project"] == "other"
    )
    assert api(gateway, "DELETE", f"/api/keys/{other_id}", admin).status_code == 404


@pytest.mark.parametrize(
    "body, param",
    [
        ({"project": "Bad Name"}, "project"),
        ({"project": "p", "role": "owner"}, "role"),
        ({"project": "p", "expires": "soon"}, "expires"),
        ({"project": "p", "models": "demo"}, "models"),
        ({"project": "p", "colour": "red"}, "colour"),
        ({}, "project"),
    ],
)
def test_an_invalid_key_request_names_the_field(
    gateway: RunningGateway, body: dict[str, Any], param: str
) -> None:
    answer = api(gateway, "POST", "/api/keys", json=body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == param


def replicas_of(url: str) -> Iterator[tuple[RunningGateway, RunningGateway]]:
    first, second = open_store(url), open_store(url)
    with (
        running_gateway(config(CONFIG), first) as one,
        running_gateway(config(CONFIG), second) as two,
    ):
        yield one, two


@pytest.fixture(params=["sqlite", "postgres"])
def replicas(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[tuple[Any, Any]]:
    url = sqlite_url if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    yield from replicas_of(url)


def refused_after(client: openai.OpenAI, limit_s: float = 10.0) -> float:
    """Seconds until the gateway refuses the client's key (polled every 20 ms)."""
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        try:
            chat(client)
        except openai.AuthenticationError:
            return time.monotonic() - start
        time.sleep(0.02)
    raise AssertionError(f"the key was still accepted after {limit_s} s")


def test_a_key_revoked_on_one_replica_is_refused_on_the_other(
    replicas: tuple[RunningGateway, RunningGateway],
) -> None:
    one, two = replicas
    made = make_key(one)
    client = two.client(made["secret"])
    deadline = time.monotonic() + 10
    while two.app.keys.lookup(made["secret"]) is None:  # known by its next refresh
        assert time.monotonic() < deadline, "the new key never reached the second replica"
        time.sleep(0.02)
    chat(client)
    assert api(one, "DELETE", f"/api/keys/{made['id']}").status_code == 200
    refused_after(client)  # within one refresh (0.5 s): docs/benchmarks.md has the figure


def test_the_keys_cli_creates_lists_rotates_and_revokes(sqlite_url: str) -> None:
    runner = CliRunner()
    db = ["--database-url", sqlite_url]
    made = runner.invoke(
        main, ["keys", "create", "--project", "shop", "--models", "demo", "--json", *db]
    )
    assert made.exit_code == 0, made.output
    key = orjson.loads(made.stdout.strip().splitlines()[-1])
    assert key["secret"].startswith("ct-") and key["models"] == ["demo"]
    listed = runner.invoke(main, ["keys", "list", *db])
    assert key["id"] in listed.stdout and key["secret"] not in listed.stdout
    rotated = runner.invoke(main, ["keys", "rotate", key["id"], *db])
    assert rotated.exit_code == 0 and rotated.stdout.strip().startswith("ct-")
    assert rotated.stdout.strip() != key["secret"]
    revoked = runner.invoke(main, ["keys", "revoke", key["id"], *db])
    assert revoked.exit_code == 0 and "revoked" in revoked.stdout
    with (
        running_gateway(config(CONFIG), open_store(sqlite_url)) as gw,
        pytest.raises(openai.AuthenticationError),
    ):
        chat(gw.client(rotated.stdout.strip()))
    bad = runner.invoke(main, ["keys", "create", "--project", "shop", "--expires", "soon", *db])
    assert bad.exit_code == 2 and "expires" in bad.output
