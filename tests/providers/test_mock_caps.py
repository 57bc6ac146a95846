"""The mock provider refuses sizes a real provider refuses, and never builds a huge answer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from controltower.errors import UpstreamBadRequest
from controltower.providers.base import ChatCompletion, ChatRequest, ChatStream
from controltower.providers.mock import (
    MAX_CHOICES,
    MAX_OUTPUT_TOKENS,
    MAX_REPLY_CHARS,
    MockProvider,
)
from controltower.settings import Deployment
from tests.conftest import DEMO, RunningGateway, config, running_gateway
from tests.providers.fake_upstream import payloads

MESSAGES = [{"role": "user", "content": "one two three four five"}]


def mock() -> MockProvider:
    return MockProvider(Deployment(provider="mock", model="mock-1"))


async def answer(**fields: Any) -> ChatCompletion:
    result = await mock().chat(ChatRequest({"model": "m", "messages": MESSAGES, **fields}))
    assert isinstance(result, ChatCompletion)
    return result


@pytest.mark.parametrize(
    ("fields", "param", "code"),
    [
        ({"n": MAX_CHOICES + 1}, "n", "integer_above_max_value"),
        ({"n": 10**12}, "n", "integer_above_max_value"),
        ({"n": 0}, "n", "integer_below_min_value"),
        ({"n": "2"}, "n", "invalid_type"),
        ({"max_tokens": MAX_OUTPUT_TOKENS + 1}, "max_tokens", "invalid_value"),
        ({"max_completion_tokens": 10**9}, "max_completion_tokens", "invalid_value"),
        ({"max_tokens": 1.5}, "max_tokens", "invalid_type"),
    ],
)
async def test_sizes_past_a_real_providers_limits_are_refused(
    fields: dict[str, Any], param: str, code: str
) -> None:
    with pytest.raises(UpstreamBadRequest) as caught:
        await answer(**fields)
    assert caught.value.status == 400
    assert (caught.value.param, caught.value.code) == (param, code)


async def test_n_up_to_the_limit_is_answered() -> None:
    result = await answer(n=MAX_CHOICES)
    assert len(result.data["choices"]) == MAX_CHOICES


async def test_max_tokens_cuts_the_reply_with_finish_reason_length() -> None:
    result = await answer(max_tokens=3)
    (choice,) = result.data["choices"]
    assert choice["message"]["content"] == "one two three"
    assert choice["finish_reason"] == "length" and result.usage.output_tokens == 3
    whole = (await answer(max_tokens=5)).data["choices"][0]
    assert (whole["message"]["content"], whole["finish_reason"]) == (MESSAGES[0]["content"], "stop")


async def test_a_stream_is_cut_at_max_tokens_too() -> None:
    body = {"model": "m", "messages": MESSAGES, "stream": True, "max_tokens": 2}
    stream = await mock().chat(ChatRequest(body))
    assert isinstance(stream, ChatStream)
    chunks = payloads(b"".join([piece async for piece in stream]))
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1])
    assert text == "one two" and chunks[-2]["choices"][0]["finish_reason"] == "length"


async def test_an_echo_of_a_huge_message_is_capped() -> None:
    huge = [{"role": "user", "content": "x" * (MAX_REPLY_CHARS * 20)}]
    result = await mock().chat(ChatRequest({"model": "m", "messages": huge, "n": MAX_CHOICES}))
    assert isinstance(result, ChatCompletion)
    assert len(result.body) < MAX_CHOICES * (MAX_REPLY_CHARS + 500)
    content = result.data["choices"][0]["message"]["content"]
    assert content == "x" * MAX_REPLY_CHARS
    assert result.data["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"dimensions": 10**9}, "dimensions"),
        ({"dimensions": 0}, "dimensions"),
        ({"input": ["x"] * 3000}, "input"),
    ],
)
async def test_embedding_sizes_are_capped(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(UpstreamBadRequest) as caught:
        await mock().embed({"model": "m", "input": "x", **fields}, 5)
    assert caught.value.param == param


# -- through the gateway, with the official client ------------------------------------------


@pytest.fixture
def demo() -> Iterator[RunningGateway]:
    with running_gateway(config(DEMO)) as gw:
        yield gw


def test_the_client_sees_a_400_naming_the_parameter(demo: RunningGateway) -> None:
    client = demo.client()
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="demo", messages=MESSAGES, n=MAX_CHOICES + 1)
    assert (info.value.param, info.value.code) == ("n", "integer_above_max_value")
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="demo", messages=MESSAGES, max_tokens=10**9)
    assert info.value.param == "max_tokens"
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model="demo", input="x", dimensions=10**9)
    assert info.value.param == "dimensions"
    trace_id = info.value.response.headers["x-controltower-trace-id"]
    assert demo.trace(trace_id)["status"] == "error"
    reply = client.chat.completions.create(model="demo", messages=MESSAGES, n=MAX_CHOICES)
    assert len(reply.choices) == MAX_CHOICES


def test_a_huge_echo_through_the_gateway_stays_small(demo: RunningGateway) -> None:
    huge = [{"role": "user", "content": "y" * (MAX_REPLY_CHARS * 20)}]
    body = {"model": "demo", "messages": huge, "n": MAX_CHOICES}
    answer = httpx.post(f"{demo.base_url}/chat/completions", json=body, timeout=30)
    assert answer.status_code == 200
    assert len(answer.content) < MAX_CHOICES * (MAX_REPLY_CHARS + 500)


def test_a_stream_of_n_choices_streams_each_and_the_trace_keeps_them(
    demo: RunningGateway,
) -> None:
    client = demo.client()
    stream = client.chat.completions.with_raw_response.create(
        model="demo", messages=[{"role": "user", "content": "one two"}], n=3, stream=True
    )
    texts: dict[int, str] = {}
    for chunk in stream.parse():
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
    assert texts == {0: "one two", 1: "one two", 2: "one two"}
    trace = demo.trace(stream.headers["x-controltower-trace-id"])
    output = trace["output"]
    assert isinstance(output, list) and len(output) == 3
