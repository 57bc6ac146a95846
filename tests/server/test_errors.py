"""Every error path answers in the OpenAI format, so the official client raises its usual type."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from controltower.web.login import session_value
from tests.conftest import RunningGateway, config, running_gateway

MESSAGES = [{"role": "user", "content": "hi"}]


def failing(failure: str, **extra: object) -> str:
    options = ", ".join([f"failure: '{failure}'", *(f"{k}: {v}" for k, v in extra.items())])
    return f"""
models:
  - name: broken
    retries: 0
    timeout_s: 0.3
    deployments:
      - provider: mock
        model: m
        mock: {{{options}}}
"""


def client(gw: RunningGateway, key: str = "unused") -> openai.OpenAI:
    return gw.client(key)


def test_unknown_model_is_404(demo_gateway: RunningGateway) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client(demo_gateway).chat.completions.create(model="nope", messages=MESSAGES)
    assert info.value.code == "model_not_found"
    assert "demo" in info.value.message


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        (b'{"model": "demo"}', "messages"),
        (b'{"model": "demo", "messages": []}', "messages"),
        (b'{"model": "demo", "messages": ["hi"]}', "messages[0]"),
        (b'{"messages": [{"role": "user", "content": "x"}]}', "model"),
        (b'{"model": "demo", "messages": [{"role": "user"}], "stream": "yes"}', "stream"),
        (b'{"model": "demo", "messages": [{"role": "user"}], "n": 0}', "n"),
    ],
)
def test_invalid_bodies_are_400(demo_gateway: RunningGateway, body: bytes, param: str) -> None:
    response = httpx.post(f"{demo_gateway.base_url}/chat/completions", content=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert error["message"]


def test_openai_client_sees_400_as_bad_request(demo_gateway: RunningGateway) -> None:
    with pytest.raises(openai.BadRequestError):
        client(demo_gateway).chat.completions.create(model="demo", messages=[])


def test_invalid_metadata_header_is_400(demo_gateway: RunningGateway) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client(demo_gateway).chat.completions.create(
            model="demo", messages=MESSAGES, extra_headers={"x-controltower-metadata": "[1]"}
        )
    assert "x-controltower-metadata" in info.value.message


def test_body_over_limit_is_413() -> None:
    settings = config("max_request_bytes: 2000\n" + failing("none"))
    with running_gateway(settings) as gw:
        big = [{"role": "user", "content": "x" * 5000}]
        with pytest.raises(openai.APIStatusError) as info:
            client(gw).chat.completions.create(model="broken", messages=big)
        assert info.value.status_code == 413
        # a chunked body without content-length is cut off the same way
        chunks = iter([b'{"model": "broken", "messages": [' + b" " * 3000, b"]}"])
        response = httpx.post(f"{gw.base_url}/chat/completions", content=chunks)
        assert response.status_code == 413


def test_master_key_is_required_when_set() -> None:
    with running_gateway(config("master_key: sk-master\n" + failing("none"))) as gw:
        with pytest.raises(openai.AuthenticationError):
            client(gw).chat.completions.create(model="broken", messages=MESSAGES)
        with pytest.raises(openai.AuthenticationError):
            client(gw, "sk-wrong").models.list()
        assert client(gw, "sk-master").chat.completions.create(model="broken", messages=MESSAGES)
        assert httpx.get(f"{gw.url}/api/traces").status_code == 401
        assert httpx.get(f"{gw.url}/health").status_code == 200
        # the web UI's login cookie stands in for the header
        session = session_value(gw.app.auth.sign, int(time.time()) + 60)
        good, bad = {"controltower_key": session}, {"controltower_key": "sk-master"}
        assert httpx.get(f"{gw.url}/api/traces", cookies=good).status_code == 200
        # the cookie holds a signed session, never the key itself
        assert httpx.get(f"{gw.url}/api/traces", cookies=bad).status_code == 401


def test_rate_limit_is_429_with_retry_after() -> None:
    with running_gateway(config(failing("429", retry_after_s=7))) as gw:
        with pytest.raises(openai.RateLimitError) as info:
            client(gw).chat.completions.create(model="broken", messages=MESSAGES)
        assert info.value.response.headers["retry-after"] == "7"


@pytest.mark.parametrize("failure", ["500", "503", "malformed"])
def test_upstream_failure_is_502(failure: str) -> None:
    with running_gateway(config(failing(failure))) as gw:
        with pytest.raises(openai.InternalServerError) as info:
            client(gw).chat.completions.create(model="broken", messages=MESSAGES)
        assert info.value.status_code == 502


def test_upstream_timeout_is_504_and_traced() -> None:
    with running_gateway(config(failing("timeout"))) as gw:
        raw = httpx.post(
            f"{gw.base_url}/chat/completions", json={"model": "broken", "messages": MESSAGES}
        )
        assert raw.status_code == 504
        assert raw.json()["error"]["code"] == "upstream_timeout"
        trace = gw.trace(raw.headers["x-controltower-trace-id"])
        assert trace["status"] == "error"
        assert "did not answer within 0.3 s" in trace["spans"][0]["error"]


@pytest.mark.parametrize(
    ("failure", "code"),
    [("context_window", "context_length_exceeded"), ("content_policy", "content_policy_violation")],
)
def test_refusals_are_400_with_their_code(failure: str, code: str) -> None:
    with running_gateway(config(failing(failure))) as gw:
        with pytest.raises(openai.BadRequestError) as info:
            client(gw).chat.completions.create(model="broken", messages=MESSAGES)
        assert info.value.code == code


def test_unknown_route_is_404_in_openai_format(demo_gateway: RunningGateway) -> None:
    response = httpx.get(f"{demo_gateway.url}/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "invalid_request_error"
