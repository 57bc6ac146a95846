"""Retries, fallbacks and cooldowns, driven by the mock provider's failure modes."""

from __future__ import annotations

import time

import openai
import pytest

from tests.conftest import RunningGateway, config, running_gateway

MESSAGES = [{"role": "user", "content": "ping"}]


def client(gw: RunningGateway, key: str = "unused") -> openai.OpenAI:
    return gw.client(key)


FALLBACK = """
backoff_base_s: 0.001
models:
  - name: primary
    retries: 1
    fallbacks: [backup]
    deployments:
      - provider: mock
        model: flaky
        mock: {failure: '500'}
  - name: backup
    deployments:
      - provider: mock
        model: steady
        mock: {reply: "from backup"}
"""


def test_fallback_after_retries_records_every_attempt() -> None:
    with running_gateway(config(FALLBACK)) as gw:
        raw = client(gw).chat.completions.with_raw_response.create(
            model="primary", messages=MESSAGES
        )
        assert raw.parse().choices[0].message.content == "from backup"
        trace = gw.trace(raw.headers["x-controltower-trace-id"])
        root, *attempts = trace["spans"]
        assert trace["status"] == "ok"
        assert root["deployment"] == "mock/steady" and root["model"] == "steady"
        assert [a["deployment"] for a in attempts] == ["mock/flaky", "mock/flaky", "mock/steady"]
        assert [a["status"] for a in attempts] == ["error", "error", "ok"]
        assert "HTTP 500" in attempts[0]["error"]
        assert all(a["parent_id"] == root["id"] for a in attempts)


def test_stream_falls_back_before_the_first_byte() -> None:
    with running_gateway(config(FALLBACK)) as gw:
        stream = client(gw).chat.completions.create(model="primary", messages=MESSAGES, stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text == "from backup"


def test_stream_cut_after_first_byte_ends_with_an_error_event() -> None:
    settings = config("""
models:
  - name: cut
    fallbacks: [backup]
    deployments:
      - provider: mock
        model: m
        mock: {failure: cut, cut_after: 2, reply: "one two three four five"}
  - name: backup
    deployments: [{provider: mock, model: b}]
""")
    with running_gateway(settings) as gw:
        with client(gw).chat.completions.with_streaming_response.create(
            model="cut", messages=MESSAGES, stream=True
        ) as response:
            trace_id = response.headers["x-controltower-trace-id"]
            received = []
            with pytest.raises(openai.APIError) as info:
                for chunk in response.parse():
                    received.extend(c.delta.content or "" for c in chunk.choices)
        assert "".join(received) == "one two"  # no fallback once bytes were sent
        assert "broke off its stream" in info.value.message
        trace = gw.trace(trace_id)
        assert trace["status"] == "error"
        assert trace["spans"][0]["output"]["content"] == "one two"


def test_rate_limited_deployment_cools_down_and_traffic_moves() -> None:
    settings = config("""
models:
  - name: pair
    retries: 1
    deployments:
      - provider: mock
        model: limited
        mock: {failure: '429', retry_after_s: 30}
      - provider: mock
        model: healthy
""")
    with running_gateway(settings) as gw:
        c = client(gw)
        for _ in range(12):
            assert c.chat.completions.create(model="pair", messages=MESSAGES)
        limited = gw.provider("pair", 0)
        # the first 429 opened its breaker for Retry-After seconds: it got one call at most
        assert limited.calls <= 1
        assert gw.app.gateway.balanced["pair"].states[0].breaker.state in ("closed", "open")


def test_breaker_opens_then_half_open_probe_recovers() -> None:
    settings = config("""
models:
  - name: solo
    retries: 0
    failure_threshold: 2
    cooldown_s: 0.3
    deployments:
      - provider: mock
        model: m
        mock: {failure: '500', failure_times: 2}
""")
    with running_gateway(settings) as gw:
        c = client(gw)
        for _ in range(2):
            with pytest.raises(openai.InternalServerError):
                c.chat.completions.create(model="solo", messages=MESSAGES)
        breaker = gw.app.gateway.balanced["solo"].states[0].breaker
        assert breaker.state == "open"
        with pytest.raises(openai.InternalServerError) as info:  # refused without a call
            c.chat.completions.create(model="solo", messages=MESSAGES)
        assert info.value.status_code == 503
        assert gw.provider("solo").calls == 2
        time.sleep(0.35)
        assert c.chat.completions.create(model="solo", messages=MESSAGES)  # the probe
        assert breaker.state == "closed"


def test_retry_honours_retry_after() -> None:
    settings = config("""
models:
  - name: slowdown
    retries: 1
    deployments:
      - provider: mock
        model: m
        mock: {failure: '429', failure_times: 1, retry_after_s: 0.3}
""")
    with running_gateway(settings) as gw:
        raw = client(gw).chat.completions.with_raw_response.create(
            model="slowdown", messages=MESSAGES
        )
        _, first, second = gw.trace(raw.headers["x-controltower-trace-id"])["spans"]
        assert first["status"] == "error" and second["status"] == "ok"
        gap_ms = (_us(second["start_time"]) - _us(first["end_time"])) / 1000
        assert gap_ms >= 290


def _us(iso: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1_000_000)


def test_weighted_split_follows_weights() -> None:
    settings = config("""
models:
  - name: split
    deployments:
      - {provider: mock, model: a, weight: 3}
      - {provider: mock, model: b, weight: 1}
""")
    with running_gateway(settings) as gw:
        c = client(gw)
        for _ in range(200):
            c.chat.completions.create(model="split", messages=MESSAGES)
        a, b = gw.provider("split", 0).calls, gw.provider("split", 1).calls
        assert a + b == 200 and 110 <= a <= 185


def test_client_disconnect_stops_the_provider_stream() -> None:
    import socket

    words = " ".join(f"w{i}" for i in range(200))
    settings = config(f"""
models:
  - name: slow
    deployments:
      - provider: mock
        model: m
        mock: {{reply: "{words}", token_ms: 20}}
""")
    with running_gateway(settings) as gw:
        body = b'{"model": "slow", "stream": true, "messages": [{"role": "user", "content": "x"}]}'
        host, port = gw.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (len(body), body)
            )
            head = sock.recv(65536)
            trace_id = head.split(b"x-controltower-trace-id: ")[1].split(b"\r\n")[0].decode()
        trace = gw.trace(trace_id)  # recorded once the gateway noticed
        assert trace["status"] == "error"
        assert len(trace["output"]["content"].split()) < 200  # the provider was stopped
        assert "the client disconnected" in trace["spans"][0]["error"]
        assert gw.app.gateway.balanced["slow"].states[0].in_flight == 0
