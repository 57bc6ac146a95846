"""The Anthropic adapter against a local server that speaks Anthropic's Messages wire format."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from controltower.errors import (
    ContextWindowExceeded,
    InvalidRequest,
    RateLimited,
    UpstreamBadRequest,
    UpstreamError,
    UpstreamTimeout,
)
from controltower.providers.anthropic import AnthropicProvider
from controltower.providers.anthropic_translate import to_anthropic
from controltower.providers.base import ChatCompletion, ChatRequest, ChatStream
from controltower.settings import Deployment
from tests.providers.fake_upstream import FakeUpstream, Reply, serving_fake

MODEL = "claude-haiku-4-5"
SERVED_MODEL = "claude-haiku-4-5-20251001"


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with serving_fake() as fake:
        yield fake


def deployment(api_base: str) -> Deployment:
    return Deployment(
        provider="anthropic",
        model=MODEL,
        api_base=api_base,
        api_key=SecretStr("sk-ant-test"),
        headers={"anthropic-beta": "test-beta"},
    )


@pytest.fixture
async def provider(upstream: FakeUpstream) -> AsyncIterator[AnthropicProvider]:
    adapter = AnthropicProvider(deployment(upstream.url))
    yield adapter
    await adapter.aclose()


# --- Anthropic wire format ------------------------------------------------------------------


def usage(input_tokens: int, output_tokens: int, read: int = 0, written: int = 0) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": read,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def message(content: list[dict[str, Any]], stop_reason: str, **counts: int) -> dict[str, Any]:
    return {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": SERVED_MODEL,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage(**counts),
    }


def sse(*events: dict[str, Any]) -> list[bytes]:
    """Anthropic's SSE framing; each event is cut in two to exercise reassembly."""
    pieces = []
    for event in events:
        raw = b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"
        pieces += [raw[: len(raw) // 2], raw[len(raw) // 2 :]]
    return pieces


def message_start(input_tokens: int = 25, read: int = 0) -> dict[str, Any]:
    start = message([], "", input_tokens=input_tokens, output_tokens=1, read=read)
    start["stop_reason"] = None
    return {"type": "message_start", "message": start}


def block_start(index: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def delta(index: int, **fields: Any) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": fields}


def block_stop(index: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


def message_delta(stop_reason: str, output_tokens: int) -> dict[str, Any]:
    return {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": None},
        "usage": {"output_tokens": output_tokens},
    }


PING = {"type": "ping"}
MESSAGE_STOP = {"type": "message_stop"}


def error_event(kind: str, text: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": text}}


def error_body(kind: str, text: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": text}, "request_id": "req_011"}


TEXT_STREAM = [
    message_start(),
    block_start(0, {"type": "text", "text": ""}),
    PING,
    delta(0, type="text_delta", text="Hello"),
    delta(0, type="text_delta", text=", world"),
    block_stop(0),
    message_delta("end_turn", 15),
    MESSAGE_STOP,
]

TOOL_STREAM = [
    message_start(input_tokens=400),
    block_start(0, {"type": "text", "text": ""}),
    delta(0, type="text_delta", text="Let me check."),
    block_stop(0),
    block_start(1, {"type": "tool_use", "id": "toolu_01T1x1", "name": "get_weather", "input": {}}),
    delta(1, type="input_json_delta", partial_json=""),
    delta(1, type="input_json_delta", partial_json='{"location": "San Fra'),
    delta(1, type="input_json_delta", partial_json='ncisco, CA"}'),
    block_stop(1),
    block_start(2, {"type": "tool_use", "id": "toolu_02", "name": "get_time", "input": {}}),
    delta(2, type="input_json_delta", partial_json='{"tz": "PST"}'),
    block_stop(2),
    message_delta("tool_use", 89),
    MESSAGE_STOP,
]

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
    },
}


async def drain(stream: ChatStream) -> list[Any]:
    """The payloads of the client-bound SSE events, [DONE] as the string."""
    raw = b"".join([piece async for piece in stream])
    payloads: list[Any] = []
    for block in raw.split(b"\n\n"):
        if block:
            assert block.startswith(b"data: ")
            data = block[6:]
            payloads.append("[DONE]" if data == b"[DONE]" else orjson.loads(data))
    return payloads


def request(body: dict[str, Any], **kwargs: Any) -> ChatRequest:
    return ChatRequest({"model": "alias", **body}, **kwargs)


# --- whole answers --------------------------------------------------------------------------


async def test_text_answer_translates_request_and_response(
    upstream: FakeUpstream, provider: AnthropicProvider
) -> None:
    upstream.replies.append(
        Reply(
            body=message(
                [{"type": "text", "text": "Bonjour."}], "end_turn", input_tokens=30, output_tokens=4
            )
        )
    )
    body = {
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "user", "content": "Hi"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in these?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                ],
            },
        ],
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": "END",
        "user": "user-42",
    }
    result = await provider.chat(request(body))

    seen = upstream.last
    assert seen.path == "/v1/messages"
    assert seen.headers["x-api-key"] == "sk-ant-test"
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert seen.headers["anthropic-beta"] == "test-beta"
    assert seen.headers["content-type"] == "application/json"
    assert "authorization" not in seen.headers
    assert seen.body == {
        "model": MODEL,
        "system": "You are terse.\n\nAnswer in French.",
        "messages": [
            {
                "role": "user",  # the two user messages merged: Anthropic needs alternation
                "content": [
                    {"type": "text", "text": "Hi"},
                    {"type": "text", "text": "What is in these?"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"},
                    },
                    {
                        "type": "image",
                        "source": {"type": "url", "url": "https://example.com/cat.jpg"},
                    },
                ],
            }
        ],
        "max_tokens": 4096,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "user-42"},
    }

    assert isinstance(result, ChatCompletion)
    assert orjson.loads(result.body) == result.data
    assert result.data["id"] == "msg_01XFDUDYJgAACzvnptvVoYEL"
    assert result.data["object"] == "chat.completion"
    assert isinstance(result.data["created"], int)
    assert result.data["model"] == result.model == SERVED_MODEL
    assert result.data["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Bonjour.", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert result.data["usage"] == {
        "prompt_tokens": 30,
        "completion_tokens": 4,
        "total_tokens": 34,
        "prompt_tokens_details": {"cached_tokens": 0},
    }
    assert (result.usage.input_tokens, result.usage.output_tokens) == (30, 4)


async def test_tool_use_round_trip(upstream: FakeUpstream, provider: AnthropicProvider) -> None:
    answer: list[dict[str, Any]] = [
        {"type": "text", "text": "Checking both."},
        {
            "type": "tool_use",
            "id": "toolu_03",
            "name": "get_weather",
            "input": {"location": "Oslo"},
        },
    ]
    upstream.replies.append(
        Reply(
            body=message(
                answer, "tool_use", input_tokens=10, output_tokens=40, read=300, written=50
            )
        )
    )
    body = {
        "messages": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"location": "Rome"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
            {
                "role": "tool",
                "tool_call_id": "call_2",
                "content": [{"type": "text", "text": "21C"}],
            },
            {"role": "user", "content": "And Oslo?"},
        ],
        "tools": [WEATHER_TOOL, {"type": "function", "function": {"name": "noop"}}],
        "tool_choice": "required",
        "max_completion_tokens": 256,
        "max_tokens": 999,
    }
    result = await provider.chat(request(body))

    sent = upstream.last.body
    assert sent["max_tokens"] == 256
    assert sent["tools"] == [
        {
            "name": "get_weather",
            "input_schema": WEATHER_TOOL["function"]["parameters"],
            "description": "Current weather in a city",
        },
        {"name": "noop", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert sent["tool_choice"] == {"type": "any"}
    assert sent["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "call_1",
                    "name": "get_weather",
                    "input": {"location": "Paris"},
                },
                {
                    "type": "tool_use",
                    "id": "call_2",
                    "name": "get_weather",
                    "input": {"location": "Rome"},
                },
            ],
        },
        {
            "role": "user",  # both tool results, then the user's text, in one turn
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "call_1",
                    "content": [{"type": "text", "text": "18C, sunny"}],
                },
                {
                    "type": "tool_result",
                    "tool_use_id": "call_2",
                    "content": [{"type": "text", "text": "21C"}],
                },
                {"type": "text", "text": "And Oslo?"},
            ],
        },
    ]

    assert isinstance(result, ChatCompletion)
    choice = result.data["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Checking both."
    assert choice["message"]["tool_calls"] == [
        {
            "id": "toolu_03",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"location":"Oslo"}'},
        }
    ]
    assert result.data["usage"] == {
        "prompt_tokens": 360,
        "completion_tokens": 40,
        "total_tokens": 400,
        "prompt_tokens_details": {"cached_tokens": 300},
    }
    assert result.usage.cached_tokens == 300


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("refusal", "content_filter"),
    ],
)
async def test_stop_reasons(
    upstream: FakeUpstream, provider: AnthropicProvider, stop_reason: str, finish: str
) -> None:
    text = [{"type": "text", "text": "x"}]
    upstream.replies.append(Reply(body=message(text, stop_reason, input_tokens=1, output_tokens=1)))
    result = await provider.chat(request({"messages": [{"role": "user", "content": "x"}]}))
    assert isinstance(result, ChatCompletion)
    assert result.data["choices"][0]["finish_reason"] == finish


# --- streams --------------------------------------------------------------------------------


async def test_streamed_text_with_usage_chunk(
    upstream: FakeUpstream, provider: AnthropicProvider
) -> None:
    upstream.replies.append(Reply(events=sse(*TEXT_STREAM)))
    body = {
        "messages": [{"role": "user", "content": "Hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    stream = await provider.chat(request(body, client_wants_usage=True))

    assert upstream.last.body["stream"] is True
    assert "stream_options" not in upstream.last.body
    assert isinstance(stream, ChatStream)
    events = await drain(stream)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert {c["id"] for c in chunks} == {"msg_01XFDUDYJgAACzvnptvVoYEL"}
    assert {c["model"] for c in chunks} == {SERVED_MODEL}
    deltas = [c["choices"][0]["delta"] for c in chunks[:-1]]
    assert deltas == [
        {"role": "assistant", "content": ""},
        {"content": "Hello"},
        {"content": ", world"},
        {},
    ]
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]] == [None, None, None, "stop"]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 25,
        "completion_tokens": 15,
        "total_tokens": 40,
        "prompt_tokens_details": {"cached_tokens": 0},
    }
    summary = stream.summary
    assert summary.output() == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello, world"},
            "finish_reason": "stop",
        }
    ]
    assert (summary.usage.input_tokens, summary.usage.output_tokens) == (25, 15)
    assert summary.model == SERVED_MODEL


async def test_stream_hides_usage_chunk_but_summary_keeps_usage(
    upstream: FakeUpstream, provider: AnthropicProvider
) -> None:
    upstream.replies.append(Reply(events=sse(*TEXT_STREAM)))
    body = {"messages": [{"role": "user", "content": "Hi"}], "stream": True}
    stream = await provider.chat(request(body))
    assert isinstance(stream, ChatStream)
    events = await drain(stream)
    assert events[-1] == "[DONE]"
    assert all(c["choices"] for c in events[:-1])
    assert events[-2]["choices"][0]["finish_reason"] == "stop"
    assert (stream.summary.usage.input_tokens, stream.summary.usage.output_tokens) == (25, 15)


async def test_streamed_tool_use(upstream: FakeUpstream, provider: AnthropicProvider) -> None:
    upstream.replies.append(Reply(events=sse(*TOOL_STREAM)))
    body = {
        "messages": [{"role": "user", "content": "Weather?"}],
        "stream": True,
        "tools": [WEATHER_TOOL],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": False,
    }
    stream = await provider.chat(request(body, client_wants_usage=True))

    assert upstream.last.body["tool_choice"] == {
        "type": "tool",
        "name": "get_weather",
        "disable_parallel_tool_use": True,
    }
    assert isinstance(stream, ChatStream)
    events = await drain(stream)
    calls = [
        c["choices"][0]["delta"]["tool_calls"]
        for c in events[:-2]
        if "tool_calls" in c["choices"][0]["delta"]
    ]
    assert calls == [
        [
            {
                "index": 0,
                "id": "toolu_01T1x1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": ""},
            }
        ],
        [{"index": 0, "function": {"arguments": '{"location": "San Fra'}}],
        [{"index": 0, "function": {"arguments": 'ncisco, CA"}'}}],
        [
            {
                "index": 1,
                "id": "toolu_02",
                "type": "function",
                "function": {"name": "get_time", "arguments": ""},
            }
        ],
        [{"index": 1, "function": {"arguments": '{"tz": "PST"}'}}],
    ]
    assert events[-3]["choices"][0]["finish_reason"] == "tool_calls"
    assert events[-2]["usage"]["prompt_tokens"] == 400
    assert events[-2]["usage"]["completion_tokens"] == 89
    [output] = stream.summary.output()
    assert output["finish_reason"] == "tool_calls"
    assert output["message"]["content"] == "Let me check."
    assert output["message"]["tool_calls"] == [
        {
            "id": "toolu_01T1x1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"location": "San Francisco, CA"}'},
        },
        {
            "id": "toolu_02",
            "type": "function",
            "function": {"name": "get_time", "arguments": '{"tz": "PST"}'},
        },
    ]


async def test_stream_without_message_stop_fails_in_iterator(
    upstream: FakeUpstream, provider: AnthropicProvider
) -> None:
    upstream.replies.append(Reply(events=sse(*TEXT_STREAM[:4])))
    stream = await provider.chat(
        request({"messages": [{"role": "user", "content": "Hi"}], "stream": True})
    )
    assert isinstance(stream, ChatStream)
    received = []
    with pytest.raises(UpstreamError, match="before message_stop"):
        async for piece in stream:
            received.append(piece)
    assert b"Hello" in b"".join(received)
    assert stream.summary.texts == {0: ["Hello"]}


async def test_error_event_mid_stream_fails_in_iterator(
    upstream: FakeUpstream, provider: AnthropicProvider
) -> None:
    events = [*TEXT_STREAM[:4], error_event("overloaded_error", "Overloaded")]
    upstream.replies.append(Reply(events=sse(*events), gap_s=0.01))
    stream = await provider.chat(
        request({"messages": [{"role": "user", "content": "Hi"}], "stream": True})
    )
    assert isinstance(stream, ChatStream)
    received = []
    with pytest.raises(UpstreamError, match="Overloaded"):
        async for piece in stream:
            received.append(piece)
    assert b"Hello" in b"".join(received)


async def test_stream_in_one_read(upstream: FakeUpstream, provider: AnthropicProvider) -> None:
    upstream.replies.append(Reply(events=[b"".join(sse(*TEXT_STREAM))]))
    stream = await provider.chat(
        request({"messages": [{"role": "user", "content": "Hi"}], "stream": True})
    )
    assert isinstance(stream, ChatStream)
    events = await drain(stream)
    assert events[-1] == "[DONE]"
    assert "".join(stream.summary.texts[0]) == "Hello, world"


@pytest.mark.parametrize(
    ("kind", "text", "expected"),
    [
        ("overloaded_error", "Overloaded", UpstreamError),
        ("rate_limit_error", "Number of request tokens has exceeded your rate limit", RateLimited),
    ],
)
async def test_error_event_before_content_raises_from_chat(
    upstream: FakeUpstream,
    provider: AnthropicProvider,
    kind: str,
    text: str,
    expected: type[Exception],
) -> None:
    # message_start and a ping come first, yet no byte has gone to the client: fallback is open
    upstream.replies.append(Reply(events=sse(message_start(), PING, error_event(kind, text))))
    with pytest.raises(expected, match=text) as caught:
        await provider.chat(
            request({"messages": [{"role": "user", "content": "Hi"}], "stream": True})
        )
    if expected is UpstreamError:
        assert not isinstance(caught.value, RateLimited)


async def test_stream_http_error_raises_from_chat(
    upstream: FakeUpstream, provider: AnthropicProvider
) -> None:
    upstream.replies.append(Reply(status=529, body=error_body("overloaded_error", "Overloaded")))
    with pytest.raises(UpstreamError, match="Overloaded"):
        await provider.chat(
            request({"messages": [{"role": "user", "content": "Hi"}], "stream": True})
        )


# --- failures -------------------------------------------------------------------------------


async def test_429_is_rate_limited_with_retry_after(
    upstream: FakeUpstream, provider: AnthropicProvider
) -> None:
    upstream.replies.append(
        Reply(
            status=429,
            body=error_body("rate_limit_error", "This request would exceed your rate limit"),
            headers={"retry-after": "7", "anthropic-ratelimit-requests-remaining": "0"},
        )
    )
    with pytest.raises(RateLimited) as caught:
        await provider.chat(request({"messages": [{"role": "user", "content": "Hi"}]}))
    assert caught.value.retry_after == 7.0
    assert "exceed your rate limit" in caught.value.message


async def test_529_overloaded_is_upstream_error(
    upstream: FakeUpstream, provider: AnthropicProvider
) -> None:
    upstream.replies.append(Reply(status=529, body=error_body("overloaded_error", "Overloaded")))
    with pytest.raises(UpstreamError, match="Overloaded") as caught:
        await provider.chat(request({"messages": [{"role": "user", "content": "Hi"}]}))
    assert type(caught.value) is UpstreamError


@pytest.mark.parametrize(
    "text",
    [
        "prompt is too long: 214315 tokens > 200000 maximum",
        "input length and `max_tokens` exceed context limit: 188240 + 21333 > 200000, "
        "decrease input length or `max_tokens` and try again",
    ],
)
async def test_prompt_too_long_is_context_window_exceeded(
    upstream: FakeUpstream, provider: AnthropicProvider, text: str
) -> None:
    upstream.replies.append(Reply(status=400, body=error_body("invalid_request_error", text)))
    with pytest.raises(ContextWindowExceeded):
        await provider.chat(request({"messages": [{"role": "user", "content": "Hi"}]}))


async def test_other_400_is_upstream_bad_request(
    upstream: FakeUpstream, provider: AnthropicProvider
) -> None:
    text = "messages.0.content.0.image.source.base64.data: invalid base64 data"
    upstream.replies.append(Reply(status=400, body=error_body("invalid_request_error", text)))
    with pytest.raises(UpstreamBadRequest, match="invalid base64"):
        await provider.chat(request({"messages": [{"role": "user", "content": "Hi"}]}))


async def test_401_names_the_credentials(
    upstream: FakeUpstream, provider: AnthropicProvider
) -> None:
    body = error_body("authentication_error", "invalid x-api-key")
    upstream.replies.append(Reply(status=401, body=body))
    with pytest.raises(UpstreamError, match="credentials"):
        await provider.chat(request({"messages": [{"role": "user", "content": "Hi"}]}))


async def test_slow_upstream_times_out(upstream: FakeUpstream, provider: AnthropicProvider) -> None:
    upstream.replies.append(
        Reply(body=message([], "end_turn", input_tokens=1, output_tokens=1), delay_s=0.5)
    )
    with pytest.raises(UpstreamTimeout):
        await provider.chat(
            request({"messages": [{"role": "user", "content": "Hi"}]}, timeout_s=0.05)
        )


async def test_unreachable_upstream_is_upstream_error() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    adapter = AnthropicProvider(deployment(f"http://127.0.0.1:{port}"))
    try:
        with pytest.raises(UpstreamError, match="could not be reached"):
            await adapter.chat(request({"messages": [{"role": "user", "content": "Hi"}]}))
    finally:
        await adapter.aclose()


async def test_malformed_answer_is_upstream_error(
    upstream: FakeUpstream, provider: AnthropicProvider
) -> None:
    upstream.replies.append(Reply(body={"unexpected": True}))
    with pytest.raises(UpstreamError):
        await provider.chat(request({"messages": [{"role": "user", "content": "Hi"}]}))


async def test_n_above_one_is_refused_before_any_call(
    upstream: FakeUpstream, provider: AnthropicProvider
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await provider.chat(request({"messages": [{"role": "user", "content": "Hi"}], "n": 2}))
    assert caught.value.param == "n"
    assert upstream.seen == []


async def test_embed_is_refused(provider: AnthropicProvider) -> None:
    with pytest.raises(InvalidRequest, match="no embeddings API"):
        await provider.embed({"input": "hi"}, 5.0)


# --- request translation details ------------------------------------------------------------


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"type": "tool", "name": "get_weather"},
        ),
    ],
)
def test_tool_choice(choice: Any, expected: dict[str, Any]) -> None:
    body = {
        "messages": [{"role": "user", "content": "x"}],
        "tools": [WEATHER_TOOL],
        "tool_choice": choice,
    }
    assert to_anthropic(body, MODEL)["tool_choice"] == expected


def test_response_format_schema_goes_to_system() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    body = {
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "x"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "c", "schema": schema}},
        "stop": ["a", "b"],
        "temperature": 1.5,
    }
    sent = to_anthropic(body, MODEL)
    assert sent["system"].startswith("Be brief.\n\n")
    assert orjson.dumps(schema).decode() in sent["system"]
    assert sent["stop_sequences"] == ["a", "b"]
    assert sent["temperature"] == 1.0


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "system", "content": "only system"}]}, "messages"),
        ({"messages": [{"role": "function", "content": "x"}]}, "messages[0].role"),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "messages[0].content[0]",
        ),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "c",
                                "type": "function",
                                "function": {"name": "f", "arguments": "[1]"},
                            }
                        ],
                    }
                ]
            },
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            {"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "web_search"}]},
            "tools[0].type",
        ),
        (
            {
                "messages": [{"role": "user", "content": "x"}],
                "tools": [WEATHER_TOOL],
                "tool_choice": "sometimes",
            },
            "tool_choice",
        ),
    ],
)
def test_untranslatable_requests_are_refused(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        to_anthropic(body, MODEL)
    assert caught.value.param == param
