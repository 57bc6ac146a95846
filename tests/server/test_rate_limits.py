"""Rate limits end to end with the official client: requests and tokens per minute, the
x-ratelimit-* headers on every answer, 429 `rate_limit_exceeded` with Retry-After, token
estimates corrected after the call, one total across replicas over Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator

import openai
import pytest

from controltower.store import InMemoryStore
from tests.conftest import RunningGateway, config, running_gateway
from tests.conftest import chat_as as call

CONFIG = """
models:
  - name: demo
    deployments: [{provider: mock, model: demo-1, price: {input: 1, output: 1}}]
  - name: wide
    deployments: [{provider: mock, model: wide-1}]
rate_limits:
  - {name: per-user, scope: user, rpm: 3}
  - {name: wide-tokens, scope: model, match: wide, tpm: 200}
"""


@pytest.fixture
def gateway() -> Iterator[RunningGateway]:
    with running_gateway(config(CONFIG)) as gw:
        yield gw


def test_requests_per_minute_count_down_in_the_headers_then_429(gateway: RunningGateway) -> None:
    client = gateway.client()
    left = []
    for _ in range(3):
        headers = call(client).headers
        assert headers["x-ratelimit-limit-requests"] == "3"
        assert headers["x-ratelimit-reset-requests"].endswith("s")
        left.append(headers["x-ratelimit-remaining-requests"])
    assert left == ["2", "1", "0"]
    with pytest.raises(openai.RateLimitError) as refused:
        call(client)
    assert refused.value.code == "rate_limit_exceeded"
    assert (
        "per-user" in refused.value.message
        and "3 of 3 requests per minute" in refused.value.message
    )
    response = refused.value.response
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert response.headers["x-ratelimit-remaining-requests"] == "0"
    call(client, user="bob")  # another user has a minute of their own


def test_tokens_are_charged_by_estimate_and_corrected_after_the_call(
    gateway: RunningGateway,
) -> None:
    client = gateway.client()
    first = call(client, "wide", user="u1", max_tokens=50)
    estimate = 200 - int(first.headers["x-ratelimit-remaining-tokens"])
    assert estimate >= 50  # the output asked for, and the input's estimate
    usage = first.parse().usage
    time.sleep(0.2)  # the settlement runs just after the answer
    second = call(client, "wide", user="u2", max_tokens=50)
    remaining = int(second.headers["x-ratelimit-remaining-tokens"])
    assert remaining == 200 - usage.total_tokens - estimate  # the first was corrected
    with pytest.raises(openai.RateLimitError) as refused:
        for i in range(60):  # about 8 tokens each, once corrected
            call(client, "wide", user=f"v{i}", max_tokens=50)
    assert "tokens per minute" in refused.value.message


@pytest.mark.redis
def test_replicas_share_one_rate_over_redis(redis_server_url: str) -> None:
    import redis

    url = redis_server_url.rsplit("/", 1)[0] + "/14"
    redis.Redis.from_url(url).flushdb()
    text = f"redis_url: {url}\n" + CONFIG.replace("rpm: 3", "rpm: 5")
    settings = config(text)
    try:
        with (
            running_gateway(settings, InMemoryStore()) as one,
            running_gateway(settings, InMemoryStore()) as two,
        ):
            clients = [one.client(), two.client()]
            answered = refused = 0
            for i in range(12):
                try:
                    call(clients[i % 2], user="shared")
                    answered += 1
                except openai.RateLimitError:
                    refused += 1
            assert (answered, refused) == (5, 7)
    finally:
        redis.Redis.from_url(url).flushdb()


def test_an_invalid_rate_limit_names_the_field_and_the_fix() -> None:
    from controltower.errors import ConfigError

    with pytest.raises(ConfigError) as found:
        config(CONFIG + "  - {scope: user}\n  - {scope: team, rpm: 5}\n  - {scope: user, rpm: 0}\n")
    text = str(found.value)
    assert "rate_limits[2]" in text and "set one of `rpm`, `tpm`, `rpd`, `tpd`" in text
    assert "rate_limits[3].scope" in text and "rate_limits[4].rpm" in text
