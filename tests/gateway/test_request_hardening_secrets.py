"""Provider errors lose the deployment's key and any credential echo before anyone sees them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import orjson
import pytest
from pydantic import SecretStr
from tests.conftest import config, running_gateway
from tests.providers.fake_upstream import FakeUpstream, Reply, serving_fake

from controltower.errors import APIError
from controltower.providers.anthropic import AnthropicProvider
from controltower.providers.base import ChatRequest, ChatStream
from controltower.providers.openai import OpenAIProvider
from controltower.providers.scrub import Scrubber
from controltower.settings import Deployment

KEY = "sk-live-a1B2c3D4e5F6g7H8"
ECHO = f"bad request; headers were Authorization: Bearer {KEY}, api-key: {KEY}"
HELLO = {"model": "x", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with serving_fake() as fake:
        yield fake


def error_body(message: str) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": "invalid_request_error"}})


def assert_clean(text: str) -> None:
    assert KEY not in text and "a1B2c3D4" not in text, text
    assert "Bearer sk-" not in text


def test_scrubber_masks_keys_and_header_echoes() -> None:
    scrub = Scrubber([KEY, None, "ab"]).text
    assert scrub(f"key {KEY}!") == "key ***!"
    assert scrub("Authorization: Bearer abc.def") == "Authorization: ***"
    assert (
        scrub('{"api-key": "zzz", "x-api-key": \'yyy\'}')
        == '{"api-key": "***", "x-api-key": \'***\'}'
    )
    assert scrub("api_key=secret123&x=1") == "api_key=***&x=1"
    assert scrub("token: Bearer eyJhbGciOi.x") == "token: Bearer ***"
    assert scrub("Incorrect API key provided: sk-proj-abcdefgh1234") == (
        "Incorrect API key provided: sk-***"
    )
    assert scrub("a task-force of 2 ab") == "a task-force of 2 ab"  # short secrets are ignored


@pytest.mark.parametrize(
    "reply",
    [
        Reply(status=400, body=error_body(ECHO)),
        Reply(status=422, body=error_body(f"Invalid header value {KEY!r}")),
        Reply(status=500, body=f"<html>upstream echo: Authorization: Bearer {KEY}</html>".encode()),
        Reply(status=429, body=error_body(ECHO)),
    ],
)
async def test_openai_adapter_errors_are_scrubbed(upstream: FakeUpstream, reply: Reply) -> None:
    deployment = Deployment(
        provider="openai", model="gpt", api_base=f"{upstream.url}/v1", api_key=SecretStr(KEY)
    )
    provider = OpenAIProvider(deployment)
    upstream.replies.append(reply)
    try:
        with pytest.raises(APIError) as caught:
            await provider.chat(ChatRequest(dict(HELLO)))
    finally:
        await provider.aclose()
    assert upstream.last.headers["authorization"] == f"Bearer {KEY}"  # the key was sent
    assert_clean(caught.value.message)
    assert_clean(caught.value.body().decode())
    assert_clean(str(caught.value))


async def test_openai_stream_error_events_are_scrubbed(upstream: FakeUpstream) -> None:
    deployment = Deployment(
        provider="openai", model="gpt", api_base=f"{upstream.url}/v1", api_key=SecretStr(KEY)
    )
    provider = OpenAIProvider(deployment)
    first = {"id": "c", "object": "chat.completion.chunk", "model": "gpt", "choices": []}
    first["choices"] = [{"index": 0, "delta": {"role": "assistant", "content": "a"}}]
    failure = {"error": {"message": ECHO, "type": "server_error"}}
    events = [
        b"data: " + orjson.dumps(first) + b"\n\n",
        b"data: " + orjson.dumps(failure) + b"\n\n",
    ]
    upstream.replies.append(Reply(events=events, gap_s=0.05))
    upstream.replies.append(Reply(events=[b"data: " + orjson.dumps(failure) + b"\n\n"]))
    try:
        stream = await provider.chat(ChatRequest({**HELLO, "stream": True}))
        assert isinstance(stream, ChatStream)
        with pytest.raises(APIError) as caught:
            async for _ in stream:
                pass
        assert_clean(caught.value.message)
        with pytest.raises(APIError) as caught:  # before the first byte
            await provider.chat(ChatRequest({**HELLO, "stream": True}))
        assert_clean(caught.value.message)
    finally:
        await provider.aclose()


async def test_anthropic_adapter_errors_are_scrubbed(upstream: FakeUpstream) -> None:
    deployment = Deployment(
        provider="anthropic", model="claude", api_base=upstream.url, api_key=SecretStr(KEY)
    )
    provider = AnthropicProvider(deployment)
    body = {"type": "error", "error": {"type": "invalid_request_error", "message": ECHO}}
    upstream.replies.append(Reply(status=400, body=body))
    try:
        with pytest.raises(APIError) as caught:
            await provider.chat(ChatRequest(dict(HELLO)))
    finally:
        await provider.aclose()
    assert upstream.last.headers["x-api-key"] == KEY
    assert_clean(caught.value.message)


GATEWAY = """
models:
  - name: gpt
    retries: 0
    deployments:
      - provider: openai
        model: gpt-4o-mini
        api_base: {base}/v1
        api_key: ${{UPSTREAM_KEY}}
        headers: {{X-Custom-Token: tok-{key}}}
"""


async def test_neither_the_client_nor_the_trace_sees_the_key(upstream: FakeUpstream) -> None:
    settings = config(GATEWAY.format(base=upstream.url, key=KEY), UPSTREAM_KEY=KEY)
    upstream.replies.append(Reply(status=400, body=error_body(f"{ECHO}; tok-{KEY}")))
    with running_gateway(settings) as gw:
        client = gw.client()
        create: Any = client.chat.completions.create
        with pytest.raises(openai.BadRequestError) as info:
            await asyncio.to_thread(create, model="gpt", messages=HELLO["messages"])
        assert_clean(info.value.response.text)
        trace_id = info.value.response.headers["x-controltower-trace-id"]
        trace = await asyncio.to_thread(gw.trace, trace_id)
        api = await asyncio.to_thread(httpx.get, f"{gw.url}/api/traces/{trace_id}")
    assert trace["status"] == "error" and "bad request" in trace["spans"][0]["error"]
    assert_clean(orjson.dumps(trace).decode())
    assert_clean(api.text)
