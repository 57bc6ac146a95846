"""`ct.wrap_openai` with the official client against the gateway: one trace, two views."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest

import controltower as ct
from tests.conftest import RunningGateway

from .conftest import stored

MESSAGES = [{"role": "user", "content": "Say hello"}]


def generation_pair(trace: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The SDK's generation span and the gateway's span under it."""
    ours = next(s for s in trace["spans"] if s["name"] == "openai.chat.completions")
    theirs = [s for s in trace["spans"] if s["parent_id"] == ours["id"]]
    assert len(theirs) == 1, trace["spans"]
    return ours, theirs[0]


def assert_joined(trace: dict[str, Any]) -> dict[str, Any]:
    ours, theirs = generation_pair(trace)
    assert ours["kind"] == theirs["kind"] == "generation"
    assert ours["provider"] == "openai"
    assert ours["usage"]["input_tokens"] == theirs["usage"]["input_tokens"] > 0
    assert ours["usage"]["output_tokens"] == theirs["usage"]["output_tokens"] > 0
    # the gateway's span under the SDK's describes the same call: counted once
    assert trace["usage"]["input_tokens"] == ours["usage"]["input_tokens"]
    assert trace["usage"]["output_tokens"] == ours["usage"]["output_tokens"]
    return ours


def test_sync_chat_completion_joins_the_gateway_span(gateway: RunningGateway) -> None:
    client = ct.wrap_openai(gateway.client())

    @ct.observe(name="ask")
    def ask() -> tuple[str, str | None]:
        answer = client.chat.completions.create(
            model="demo", messages=MESSAGES, temperature=0.2, max_tokens=20
        )
        return answer.choices[0].message.content or "", ct.get_current_trace_id()

    text, trace_id = ask()
    trace = stored(gateway, trace_id)
    ours = assert_joined(trace)
    assert ours["model"] == "demo-model"  # the model the response names
    assert ours["input"] == MESSAGES
    assert ours["output"]["content"] == text
    assert ours["parameters"] == {"temperature": 0.2, "max_tokens": 20}
    assert ours["attributes"]["finish_reason"] == "stop"
    _, theirs = generation_pair(trace)
    assert theirs["cost"] > 0  # the gateway prices its deployment


def test_sync_stream_ends_the_span_when_consumed(gateway: RunningGateway) -> None:
    client = ct.wrap_openai(gateway.client())

    @ct.observe(name="ask-stream")
    def ask() -> tuple[str, str | None]:
        stream = client.chat.completions.create(
            model="demo",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        return text, ct.get_current_trace_id()

    text, trace_id = ask()
    ours = assert_joined(stored(gateway, trace_id))
    assert ours["output"]["content"] == text
    assert ours["ttft_ms"] is not None
    assert ours["parameters"]["stream"] is True


def test_a_stream_closed_early_still_ends_its_span(gateway: RunningGateway) -> None:
    client = ct.wrap_openai(gateway.client())

    with ct.span("early-close") as outer:
        with client.chat.completions.create(model="demo", messages=MESSAGES, stream=True) as s:
            next(iter(s))
        trace_id = outer.trace_id_hex
    trace = stored(gateway, trace_id)
    ours = next(s for s in trace["spans"] if s["name"] == "openai.chat.completions")
    assert ours["end_time"] is not None
    assert ours["status"] == "ok"


async def test_async_client_plain_and_streaming(gateway: RunningGateway) -> None:
    client = ct.wrap_openai(
        openai.AsyncOpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)
    )

    @ct.observe(name="ask-async")
    async def ask() -> str | None:
        answer = await client.chat.completions.create(model="demo", messages=MESSAGES)
        assert answer.choices[0].message.content
        return ct.get_current_trace_id()

    @ct.observe(name="ask-async-stream")
    async def ask_stream() -> str | None:
        stream = await client.chat.completions.create(
            model="demo", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        async for _ in stream:
            pass
        return ct.get_current_trace_id()

    try:
        plain_id, stream_id = await ask(), await ask_stream()
    finally:
        await client.close()
    for trace_id in (plain_id, stream_id):
        trace = await asyncio.to_thread(stored, gateway, trace_id)
        assert_joined(trace)


def test_embeddings_record_an_embedding_span(gateway: RunningGateway) -> None:
    client = ct.wrap_openai(gateway.client())

    @ct.observe(name="embed")
    def embed() -> str | None:
        result = client.embeddings.create(model="demo", input=["a b c", "d e"])
        assert len(result.data) == 2
        return ct.get_current_trace_id()

    trace = stored(gateway, embed())
    ours = next(s for s in trace["spans"] if s["name"] == "openai.embeddings")
    assert ours["kind"] == "embedding"
    assert ours["input"] == ["a b c", "d e"]
    assert ours["output"]["embeddings"] == 2
    assert ours["usage"]["input_tokens"] > 0
    children = [s for s in trace["spans"] if s["parent_id"] == ours["id"]]
    assert len(children) == 1  # the gateway's span joined this trace too


def test_errors_mark_the_generation_span(gateway: RunningGateway) -> None:
    client = ct.wrap_openai(gateway.client())
    seen: dict[str, str | None] = {}

    @ct.observe(name="bad-model")
    def ask() -> None:
        seen["trace"] = ct.get_current_trace_id()
        client.chat.completions.create(model="no-such-alias", messages=MESSAGES)

    with pytest.raises(openai.NotFoundError):
        ask()
    trace = stored(gateway, seen["trace"])
    ours = next(s for s in trace["spans"] if s["name"] == "openai.chat.completions")
    assert ours["status"] == "error"
    assert ours["error"].startswith("NotFoundError")


def test_callers_headers_are_kept_and_wrapping_twice_is_harmless(gateway: RunningGateway) -> None:
    client = ct.wrap_openai(ct.wrap_openai(gateway.client()))

    with ct.span("labelled") as outer:
        client.chat.completions.create(
            model="demo",
            messages=MESSAGES,
            extra_headers={"x-controltower-user": "u-42"},
        )
        trace_id = outer.trace_id_hex
    trace = stored(gateway, trace_id)
    assert trace["user_id"] == "u-42"
    generations = [s for s in trace["spans"] if s["name"] == "openai.chat.completions"]
    assert len(generations) == 1


def test_wrap_openai_leaves_other_clients_alone(gateway: RunningGateway) -> None:
    wrapped = ct.wrap_openai(gateway.client())
    plain = gateway.client()
    assert wrapped.chat.completions.create is not plain.chat.completions.create
    assert "create" not in vars(plain.chat.completions)
    with pytest.raises(TypeError):
        ct.wrap_openai(object())
