"""`/metrics` end to end: calls made with the official client are counted by alias,
kind, status and error code, with latency and time-to-first-token histograms, tokens,
cost, cache lookups and limit rejections; the trace writer's counters are there too; and
under `--workers 2` one scrape sees every worker's calls."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.cli.test_cli import serving
from tests.conftest import RunningGateway, config, running_gateway

MASTER = "sk-master-test"
CONFIG = f"""
master_key: {MASTER}
models:
  - name: demo
    cache: {{ttl_s: 600}}
    deployments: [{{provider: mock, model: demo-1, price: {{input: 1.0, output: 2.0}}}}]
  - name: capped
    deployments: [{{provider: mock, model: capped-1, price: {{input: 1000, output: 1000}}}}]
budgets:
  - {{scope: model, match: capped, usd: 0.000001}}
"""
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    answer = httpx.get(url + "/metrics", headers={"authorization": f"Bearer {MASTER}"}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include these."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


@pytest.fixture
def gateway() -> Iterator[RunningGateway]:
    with running_gateway(config(CONFIG)) as gw:
        yield gw


def chat(client: openai.OpenAI, model: str = "demo", **kw: Any) -> Any:
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "one two three"}], max_tokens=10, **kw
    )


def test_calls_are_counted_by_alias_status_and_code(gateway: RunningGateway) -> None:
    client = gateway.client(MASTER)
    first = chat(client)
    chat(client)  # the same request: a cache hit
    for _ in chat(client, stream=True, temperature=0.5):
        pass
    client.embeddings.create(model="demo", input="refunds")
    with pytest.raises(openai.NotFoundError):
        chat(client, "no-such-alias")
    with pytest.raises(openai.RateLimitError):
        chat(client, "capped")
    gateway.app.writer.flush(5)
    time.sleep(0.1)
    samples = scrape(gateway.url)

    assert value(samples, "controltower_requests_total", model="demo", status="ok") == 4
    assert value(samples, "controltower_requests_total", model="demo", kind="embeddings") == 1
    assert value(samples, "controltower_requests_total", model="(unknown)", status="error") == 1
    assert value(samples, "controltower_errors_total", code="model_not_found") == 1
    assert value(samples, "controltower_errors_total", model="capped", code="budget_exceeded") == 1
    rejected = value(samples, "controltower_limit_rejections_total", code="budget_exceeded")
    assert rejected == 1
    assert value(samples, "controltower_cache_lookups_total", model="demo", result="hit") == 1
    assert value(samples, "controltower_cache_lookups_total", model="demo", result="miss") == 3
    assert value(samples, "controltower_cache_saved_usd_total", model="demo") > 0
    assert value(samples, "controltower_request_duration_seconds_count", model="demo") == 4
    assert value(samples, "controltower_time_to_first_token_seconds_count", model="demo") == 1
    # tokens and cost are what providers billed: the cache hit adds none
    usage = first.usage
    tokens = value(samples, "controltower_tokens_total", model="demo")
    assert tokens > usage.total_tokens and value(samples, "controltower_cost_usd_total") > 0
    written = value(samples, "controltower_traces_written_total")
    assert written == value(samples, "controltower_traces_enqueued_total") == 6
    assert value(samples, "controltower_traces_dropped_total") == 0
    assert ("controltower_trace_queue_depth", frozenset()) in samples


def test_an_api_key_may_not_read_the_metrics(gateway: RunningGateway) -> None:
    made = httpx.post(
        gateway.url + "/api/keys",
        headers={"authorization": f"Bearer {MASTER}"},
        json={"project": "shop", "role": "admin"},
        timeout=10,
    ).json()
    answer = httpx.get(
        gateway.url + "/metrics", headers={"authorization": f"Bearer {made['secret']}"}
    )
    assert answer.status_code == 403 and answer.json()["error"]["type"] == "permission_error"


def test_one_scrape_sees_every_worker(tmp_path: Path) -> None:
    config_file = tmp_path / "ct.yaml"
    config_file.write_text(CONFIG)
    env = {"CONTROLTOWER_DATABASE_URL": f"sqlite:///{tmp_path / 'ct.db'}"}
    calls = 24
    with serving("--workers", "2", "-c", str(config_file), env=env) as (url, _):
        with httpx.Client(base_url=url, timeout=10) as http:
            for n in range(calls):  # a new connection each: the kernel spreads them
                http.post(
                    "/v1/chat/completions",
                    headers={"authorization": f"Bearer {MASTER}", "connection": "close"},
                    json={"model": "demo", "messages": [{"role": "user", "content": f"{n}"}]},
                ).raise_for_status()
        deadline = time.monotonic() + 10
        counted = 0.0
        while time.monotonic() < deadline:
            counted = value(scrape(url), "controltower_requests_total", model="demo")
            if counted == calls:
                break
            time.sleep(0.2)
        seen = [value(scrape(url), "controltower_requests_total") for _ in range(6)]
    assert counted == calls
    assert seen == [calls] * 6  # whichever worker answers the scrape
