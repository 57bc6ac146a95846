"""Spend reports end to end: calls made with the official client, under keys, users and
tags, add up in `GET /api/spend` and `controltower spend` to what their traces cost, the
same in memory, SQLite and PostgreSQL; a key reads its own project's spend only."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest

from controltower.store import InMemoryStore, open_store
from tests.conftest import RunningGateway, config, running_gateway

MASTER = "sk-master-test"
CONFIG = f"""
master_key: {MASTER}
models:
  - name: demo
    deployments: [{{provider: mock, model: demo-1, price: {{input: 1.0, output: 2.0}}}}]
  - name: cheap
    deployments: [{{provider: mock, model: cheap-1, price: {{input: 0.1, output: 0.2}}}}]
budgets:
  - {{name: all, scope: project, usd: 1000}}
"""


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def gateway(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[RunningGateway]:
    if request.param == "memory":
        store: Any = InMemoryStore()
    elif request.param == "sqlite":
        store = open_store(sqlite_url)
    else:
        store = open_store(request.getfixturevalue("postgres_url"))
    with running_gateway(config(CONFIG), store) as gw:
        yield gw


def api(gw: RunningGateway, path: str, key: str = MASTER, **kw: Any) -> httpx.Response:
    return httpx.get(gw.url + path, headers={"authorization": f"Bearer {key}"}, timeout=10, **kw)


def make_key(gw: RunningGateway, project: str) -> dict[str, Any]:
    made = httpx.post(
        gw.url + "/api/keys",
        headers={"authorization": f"Bearer {MASTER}"},
        json={"project": project, "name": project},
        timeout=10,
    )
    assert made.status_code == 201, made.text
    answer: dict[str, Any] = made.json()
    return answer


def call(client: openai.OpenAI, model: str, user: str, tags: str = "", words: int = 3) -> str:
    raw = client.chat.completions.with_raw_response.create(
        model=model,
        messages=[{"role": "user", "content": " ".join(["word"] * words)}],
        user=user,
        max_tokens=20,
        extra_headers={"x-controltower-tags": tags} if tags else None,
    )
    trace_id: str = raw.headers["x-controltower-trace-id"]
    return trace_id


def costs(gw: RunningGateway, trace_ids: list[str]) -> dict[str, dict[str, Any]]:
    return {t: gw.trace(t) for t in trace_ids}


def report(gw: RunningGateway, key: str = MASTER, **params: str) -> dict[str, Any]:
    answer = api(gw, "/api/spend", key, params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_spend_by_user_key_model_and_tag_adds_up_to_the_traces(gateway: RunningGateway) -> None:
    shop, blog = make_key(gateway, "shop"), make_key(gateway, "blog")
    shop_client, blog_client = gateway.client(shop["secret"]), gateway.client(blog["secret"])
    made = [
        call(shop_client, "demo", "ann", "checkout,web", words=5),
        call(shop_client, "demo", "ann", "checkout"),
        call(shop_client, "cheap", "bob", "web", words=9),
        call(blog_client, "demo", "cat"),
        call(gateway.client(MASTER), "cheap", "ann"),
    ]
    traces = costs(gateway, made)
    total = sum(t["cost"] for t in traces.values())
    assert total > 0

    def cost_of(*indexes: int) -> float:
        return sum(traces[made[i]]["cost"] for i in indexes)

    by_user = report(gateway, by="user")
    assert by_user["totals"]["requests"] == 5 and by_user["totals"]["errors"] == 0
    assert by_user["totals"]["cost"] == pytest.approx(total)
    users = {g["key"]: g for g in by_user["groups"]}
    assert users["ann"]["cost"] == pytest.approx(cost_of(0, 1, 4))
    assert users["bob"]["cost"] == pytest.approx(cost_of(2))
    assert [g["cost"] for g in by_user["groups"]] == sorted(
        (g["cost"] for g in by_user["groups"]), reverse=True
    )  # dearest first
    tokens = sum(t["usage"]["total_tokens"] for t in traces.values())
    totals = by_user["totals"]
    assert totals["input_tokens"] + totals["output_tokens"] == tokens
    # the budget held each call's most cost; each settled to less
    assert totals["reserved"] >= totals["cost"]

    keys = {g["key"]: g["requests"] for g in report(gateway, by="key")["groups"]}
    assert keys == {shop["id"]: 3, blog["id"]: 1, None: 1}  # None: the master key
    models = {g["key"]: g["cost"] for g in report(gateway, by="model")["groups"]}
    assert models["demo"] == pytest.approx(cost_of(0, 1, 3))
    assert models["cheap"] == pytest.approx(cost_of(2, 4))
    tags = {g["key"]: g["cost"] for g in report(gateway, by="tag")["groups"]}
    assert tags["checkout"] == pytest.approx(cost_of(0, 1))
    assert tags["web"] == pytest.approx(cost_of(0, 2))  # a call with two tags counts in both
    projects = {g["key"]: g["requests"] for g in report(gateway, by="project")["groups"]}
    assert projects == {"shop": 3, "blog": 1, "default": 1}

    hourly = report(gateway, by="model", interval="hour", since="2h")
    series = hourly["groups"][0]["series"]
    assert sum(p["requests"] for p in series) == hourly["groups"][0]["requests"]
    assert all(p["bucket"].endswith(":00:00Z") for p in series)

    # a key sees its own project's spend, whatever project it asks for
    own = report(gateway, shop["secret"], by="user")
    assert own["project"] == "shop" and own["totals"]["requests"] == 3
    assert own["totals"]["cost"] == pytest.approx(cost_of(0, 1, 2))
    other = api(gateway, "/api/spend", shop["secret"], params={"project": "blog"})
    assert other.status_code == 403 and other.json()["error"]["param"] == "project"


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"by": "colour"}, "by"),
        ({"interval": "fortnight"}, "interval"),
        ({"since": "last tuesday"}, "since"),
        ({"since": "1d", "until": "2d"}, "until"),
        ({"limit": "0"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"interval": "hour", "since": "2000-01-01"}, "interval"),
    ],
)
def test_an_invalid_spend_query_names_its_parameter(
    demo_gateway: RunningGateway, params: dict[str, str], param: str
) -> None:
    answer = httpx.get(demo_gateway.url + "/api/spend", params=params, timeout=10)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"


BROKEN = """
models:
  - name: demo
    deployments: [{provider: mock, model: demo-1, price: {input: 1.0, output: 2.0}}]
  - name: broken
    retries: 0
    deployments: [{provider: mock, model: down-1, mock: {failure: "500"}}]
"""


def test_a_failed_call_is_counted_and_bills_nothing() -> None:
    with running_gateway(config(BROKEN)) as gw:
        client = gw.client()
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(
                model="broken", messages=[{"role": "user", "content": "hi"}]
            )
        client.chat.completions.create(model="demo", messages=[{"role": "user", "content": "hi"}])
        gw.app.writer.flush(5)
        spend = httpx.get(gw.url + "/api/spend", params={"by": "model"}, timeout=10).json()
    assert spend["totals"]["requests"] == 2 and spend["totals"]["errors"] == 1
    broken = next(g for g in spend["groups"] if g["key"] == "broken")
    assert broken["errors"] == 1 and not broken["cost"]


def test_the_spend_cli_reports_json_csv_and_a_table(sqlite_url: str) -> None:
    with running_gateway(config(CONFIG), open_store(sqlite_url)) as gw:
        client = gw.client(MASTER)
        made = [call(client, "demo", "ann"), call(client, "cheap", "bob", words=7)]
        total = sum(t["cost"] for t in costs(gw, made).values())
    env = {**os.environ, "CONTROLTOWER_DATABASE_URL": sqlite_url}
    cli = [sys.executable, "-m", "controltower"]

    def spend(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*cli, "spend", *args], capture_output=True, text=True, timeout=60, env=env
        )

    as_json = orjson.loads(spend("--by", "user", "--json").stdout)
    assert as_json["totals"]["cost"] == pytest.approx(total)
    assert {g["key"] for g in as_json["groups"]} == {"ann", "bob"}
    rows = list(csv.DictReader(io.StringIO(spend("--by", "model", "--csv").stdout)))
    assert {r["model"] for r in rows} == {"demo", "cheap"}
    assert sum(float(r["cost"]) for r in rows) == pytest.approx(total)
    table = spend("--by", "model", "--since", "1d")
    assert table.returncode == 0 and "demo" in table.stdout and "total" in table.stdout
    bad = spend("--since", "sometime")
    assert bad.returncode != 0 and "since" in bad.stderr
