"""MockProvider: OpenAI-shaped answers, scripted replies and every injected failure."""

from __future__ import annotations

import math
import time
from typing import Any

import orjson
import pytest

from controltower.errors import (
    APIError,
    ContentPolicy,
    ContextWindowExceeded,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
)
from controltower.providers.base import ChatCompletion, ChatRequest, ChatStream
from controltower.providers.mock import MockProvider
from controltower.settings import Deployment, MockOptions
from tests.providers.fake_upstream import payloads

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "first question"},
    {"role": "assistant", "content": "an answer"},
    {"role": "user", "content": "say hello world"},
]


def mock(**options: Any) -> MockProvider:
    return MockProvider(Deployment(provider="mock", model="mock-1", mock=MockOptions(**options)))


def request(stream: bool = False, **kwargs: Any) -> ChatRequest:
    return ChatRequest({"model": "alias", "messages": MESSAGES, "stream": stream}, **kwargs)


async def complete(provider: MockProvider, **kwargs: Any) -> ChatCompletion:
    result = await provider.chat(request(**kwargs))
    assert isinstance(result, ChatCompletion)
    return result


async def open_stream(provider: MockProvider, **kwargs: Any) -> ChatStream:
    result = await provider.chat(request(stream=True, **kwargs))
    assert isinstance(result, ChatStream)
    return result


async def drain(stream: ChatStream) -> list[Any]:
    return payloads(b"".join([piece async for piece in stream]))


def reply_text(result: ChatCompletion) -> str:
    content: str = result.data["choices"][0]["message"]["content"]
    return content


# --- answers ----------------------------------------------------------------------------------


async def test_echo_repeats_the_last_user_message_in_openai_shape() -> None:
    provider = mock()
    result = await complete(provider)

    assert orjson.loads(result.body) == result.data
    assert result.data["object"] == "chat.completion"
    assert result.data["id"].startswith("chatcmpl-")
    assert result.data["model"] == result.model == "mock-1"
    assert result.data["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "say hello world"},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ]
    # 4 messages of 2, 2, 2 and 3 words, plus 3 tokens of overhead each
    assert result.data["usage"] == {"prompt_tokens": 21, "completion_tokens": 3, "total_tokens": 24}
    assert (result.usage.input_tokens, result.usage.output_tokens) == (21, 3)
    assert provider.calls == 1


async def test_echo_reads_text_parts_and_has_a_default() -> None:
    parts = [{"type": "text", "text": "look at"}, {"type": "image_url", "image_url": {}}]
    body = {"model": "m", "messages": [{"role": "user", "content": parts}]}
    result = await mock().chat(ChatRequest(body))
    assert isinstance(result, ChatCompletion)
    assert reply_text(result) == "look at "

    result = await mock().chat(ChatRequest({"model": "m", "messages": []}))
    assert isinstance(result, ChatCompletion)
    assert reply_text(result) == "Hello from the controltower mock model."


async def test_fixed_reply_and_n_choices() -> None:
    provider = mock(reply="Always this.")
    body = {"model": "m", "messages": MESSAGES, "n": 3}
    result = await provider.chat(ChatRequest(body))
    assert isinstance(result, ChatCompletion)
    assert [c["message"]["content"] for c in result.data["choices"]] == ["Always this."] * 3
    assert [c["index"] for c in result.data["choices"]] == [0, 1, 2]


async def test_scripted_replies_are_used_in_turn_and_cycle() -> None:
    provider = mock(replies=["one", "two", "three"], reply="ignored")
    texts = [reply_text(await complete(provider)) for _ in range(4)]
    assert texts == ["one", "two", "three", "one"]


async def test_latency_is_simulated() -> None:
    provider = mock(reply="a b c", ttft_ms=20, token_ms=10)
    started = time.perf_counter()
    await complete(provider)
    assert time.perf_counter() - started >= 0.045


# --- failures ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "error", "text"),
    [
        ("500", UpstreamError, "HTTP 500"),
        ("503", UpstreamError, "HTTP 503"),
        ("malformed", UpstreamError, "malformed"),
        ("context_window", ContextWindowExceeded, "context length"),
        ("content_policy", ContentPolicy, "content policy"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_failure_modes(failure: str, error: type[APIError], text: str, stream: bool) -> None:
    provider = mock(failure=failure)
    with pytest.raises(error, match=text) as caught:
        await provider.chat(request(stream=stream))
    assert type(caught.value) is error
    assert "mock-1" in caught.value.message


async def test_429_carries_retry_after() -> None:
    provider = mock(failure="429", retry_after_s=7.5)
    with pytest.raises(RateLimited) as caught:
        await provider.chat(request())
    assert caught.value.retry_after == 7.5
    assert caught.value.status == 429


async def test_timeout_honours_the_request_timeout() -> None:
    provider = mock(failure="timeout")
    started = time.perf_counter()
    with pytest.raises(UpstreamTimeout, match=r"within 0\.05 s"):
        await provider.chat(request(timeout_s=0.05))
    assert 0.04 <= time.perf_counter() - started < 1.0


async def test_cut_breaks_a_whole_answer() -> None:
    with pytest.raises(UpstreamError, match="broke off"):
        await mock(failure="cut").chat(request())


async def test_cut_breaks_a_stream_after_cut_after_pieces() -> None:
    provider = mock(failure="cut", cut_after=2, reply="one two three four")
    stream = await open_stream(provider)
    received = []
    with pytest.raises(UpstreamError, match="broke off its stream"):
        async for piece in stream:
            received.append(piece)
    events = payloads(b"".join(received))
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [e["choices"][0]["delta"]["content"] for e in events[1:]] == ["one", " two"]


async def test_failure_times_then_success() -> None:
    provider = mock(failure="503", failure_times=2)
    for _ in range(2):
        with pytest.raises(UpstreamError):
            await provider.chat(request())
    assert reply_text(await complete(provider)) == "say hello world"
    assert reply_text(await complete(provider)) == "say hello world"
    assert provider.calls == 4


async def test_failure_rate_zero_never_fails() -> None:
    provider = mock(failure="500", failure_rate=0.0)
    for _ in range(50):
        await complete(provider)


async def test_failure_rate_between_zero_and_one_fails_some_calls() -> None:
    provider = mock(failure="500", failure_rate=0.5)
    failures = 0
    for _ in range(200):
        try:
            await complete(provider)
        except UpstreamError:
            failures += 1
    assert 50 < failures < 150


# --- streams ----------------------------------------------------------------------------------


@pytest.mark.parametrize("wants_usage", [False, True])
async def test_stream_events_and_summary(wants_usage: bool) -> None:
    provider = mock(reply="Hello there world")
    stream = await open_stream(provider, client_wants_usage=wants_usage)
    events = await drain(stream)

    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert {c["model"] for c in chunks} == {"mock-1"}
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    texts = [c["choices"][0]["delta"].get("content") for c in chunks[1:4]]
    assert texts == ["Hello", " there", " world"]
    assert chunks[4]["choices"] == [
        {"index": 0, "delta": {}, "finish_reason": "stop", "logprobs": None}
    ]
    if wants_usage:
        assert chunks[5] == {
            **{k: chunks[0][k] for k in ("id", "object", "created", "model")},
            "choices": [],
            "usage": {"prompt_tokens": 21, "completion_tokens": 3, "total_tokens": 24},
        }
    assert len(chunks) == (6 if wants_usage else 5)

    summary = stream.summary
    assert summary.model == "mock-1"
    assert (summary.usage.input_tokens, summary.usage.output_tokens) == (21, 3)
    assert summary.output() == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello there world"},
            "finish_reason": "stop",
        }
    ]


async def test_stream_of_an_empty_reply_still_has_a_piece() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": ""}], "stream": True}
    stream = await mock().chat(ChatRequest(body))
    assert isinstance(stream, ChatStream)
    events = await drain(stream)
    assert [e["choices"][0]["delta"] for e in events[1:3]] == [{"content": ""}, {}]
    assert events[-1] == "[DONE]"


# --- embeddings -------------------------------------------------------------------------------


async def test_embeddings_are_deterministic_unit_vectors() -> None:
    body = {"model": "emb", "input": ["hello world", "other text", "hello world"]}
    first = await mock().embed(body, 5.0)
    again = await mock(embedding_dims=8).embed(body, 5.0)

    data = orjson.loads(first.body)
    assert first.body == again.body
    assert data["object"] == "list"
    assert data["model"] == first.model == "mock-1"
    assert data["usage"] == {"prompt_tokens": 6, "total_tokens": 6}
    assert first.usage.input_tokens == 6
    vectors = [item["embedding"] for item in data["data"]]
    assert [item["index"] for item in data["data"]] == [0, 1, 2]
    assert {item["object"] for item in data["data"]} == {"embedding"}
    assert all(len(v) == 8 for v in vectors)
    assert all(math.isclose(sum(x * x for x in v), 1.0) for v in vectors)
    assert vectors[0] == vectors[2] != vectors[1]


async def test_embedding_dimensions_from_body_or_options() -> None:
    single = await mock(embedding_dims=3).embed({"model": "emb", "input": "one"}, 5.0)
    assert [len(d["embedding"]) for d in orjson.loads(single.body)["data"]] == [3]
    wide = await mock().embed({"model": "emb", "input": "one", "dimensions": 100}, 5.0)
    vector = orjson.loads(wide.body)["data"][0]["embedding"]
    assert len(vector) == 100
    assert math.isclose(sum(x * x for x in vector), 1.0)


async def test_embedding_failures() -> None:
    with pytest.raises(RateLimited):
        await mock(failure="429").embed({"model": "emb", "input": "x"}, 5.0)
    with pytest.raises(UpstreamTimeout):
        await mock(failure="timeout").embed({"model": "emb", "input": "x"}, 0.02)
