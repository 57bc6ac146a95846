"""The OpenAI adapter against a local server that speaks OpenAI's chat completions wire format."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from controltower.errors import (
    ContentPolicy,
    ContextWindowExceeded,
    InvalidRequest,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
)
from controltower.providers.base import ChatCompletion, ChatRequest, ChatStream
from controltower.providers.openai import OpenAIProvider
from controltower.settings import Deployment
from tests.providers.fake_upstream import FakeUpstream, Reply, payloads, serving_fake

MODEL = "gpt-4o-mini"
SERVED_MODEL = "gpt-4o-mini-2024-07-18"


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with serving_fake() as fake:
        yield fake


def deployment(api_base: str, **fields: Any) -> Deployment:
    return Deployment(
        provider="openai",
        model=MODEL,
        api_base=api_base,
        api_key=SecretStr("sk-test-123"),
        **fields,
    )


@pytest.fixture
async def provider(upstream: FakeUpstream) -> AsyncIterator[OpenAIProvider]:
    adapter = OpenAIProvider(
        deployment(f"{upstream.url}/v1/", headers={"OpenAI-Organization": "org-test"})
    )
    yield adapter
    await adapter.aclose()


# --- OpenAI wire format -----------------------------------------------------------------------


def usage(prompt: int, completion: int, cached: int = 0, reasoning: int = 0) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def completion(message: dict[str, Any], finish: str, **counts: int) -> bytes:
    # pretty-printed on purpose: the client must get these exact bytes back
    body = {
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "object": "chat.completion",
        "created": 1741569952,
        "model": SERVED_MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "refusal": None, "annotations": [], **message},
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
        "usage": usage(**counts),
        "service_tier": "default",
        "system_fingerprint": "fp_06737a9306",
    }
    return orjson.dumps(body, option=orjson.OPT_INDENT_2)


def chunk(
    delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any
) -> dict[str, Any]:
    choices = (
        []
        if delta is None
        else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    )
    return {
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "object": "chat.completion.chunk",
        "created": 1741570283,
        "model": SERVED_MODEL,
        "service_tier": "default",
        "system_fingerprint": "fp_06737a9306",
        "choices": choices,
        "usage": None,
        **extra,
    }


def usage_chunk(**counts: int) -> dict[str, Any]:
    return chunk(None, usage=usage(**counts))


def sse(*chunks: dict[str, Any], done: bool = True) -> list[bytes]:
    events = [b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks]
    return events + ([b"data: [DONE]\n\n"] if done else [])


TEXT_STREAM = [
    chunk({"role": "assistant", "content": "", "refusal": None}),
    chunk({"content": "Hello"}),
    chunk({"content": ", world"}),
    chunk({}, "stop"),
]

TOOL_STREAM = [
    chunk(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
            ],
            "refusal": None,
        }
    ),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"location":'}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": ' "Paris"}'}}]}),
    chunk(
        {
            "tool_calls": [
                {
                    "index": 1,
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": '{"tz": "CET"}'},
                }
            ]
        }
    ),
    chunk({}, "tool_calls"),
]

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}


def error_body(message: str, kind: str | None, code: str | None, param: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})


async def read_all(stream: ChatStream) -> bytes:
    return b"".join([piece async for piece in stream])


def request(body: dict[str, Any], **kwargs: Any) -> ChatRequest:
    return ChatRequest({"model": "my-alias", **body}, **kwargs)


async def chat_stream(provider: OpenAIProvider, body: dict[str, Any], **kwargs: Any) -> ChatStream:
    result = await provider.chat(request({**body, "stream": True}, **kwargs))
    assert isinstance(result, ChatStream)
    return result


HELLO = {"messages": [{"role": "user", "content": "Say hello"}]}


# --- whole answers ----------------------------------------------------------------------------


async def test_completion_is_passed_through(
    upstream: FakeUpstream, provider: OpenAIProvider
) -> None:
    raw = completion({"content": "Hello, world"}, "stop", prompt=19, completion=4, cached=3)
    upstream.replies.append(Reply(body=raw))
    body = {**HELLO, "temperature": 0.2, "max_completion_tokens": 64, "seed": 7}
    result = await provider.chat(request(body))

    seen = upstream.last
    assert seen.path == "/v1/chat/completions"
    assert seen.query == {}
    assert seen.headers["authorization"] == "Bearer sk-test-123"
    assert seen.headers["openai-organization"] == "org-test"
    assert seen.headers["content-type"] == "application/json"
    assert "api-key" not in seen.headers
    assert seen.body == {**body, "model": MODEL}

    assert isinstance(result, ChatCompletion)
    assert result.body == raw
    assert result.data == orjson.loads(raw)
    assert result.model == SERVED_MODEL
    assert (result.usage.input_tokens, result.usage.output_tokens) == (19, 4)
    assert (result.usage.cached_tokens, result.usage.reasoning_tokens) == (3, 0)


async def test_the_callers_body_is_not_modified(
    upstream: FakeUpstream, provider: OpenAIProvider
) -> None:
    upstream.replies.append(
        Reply(body=completion({"content": "x"}, "stop", prompt=1, completion=1))
    )
    body = {"model": "my-alias", **HELLO}
    await provider.chat(ChatRequest(body))
    assert body["model"] == "my-alias"


async def test_tools_response_format_n_and_user_are_forwarded_untouched(
    upstream: FakeUpstream, provider: OpenAIProvider
) -> None:
    tool_call = {
        "id": "call_abc",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'},
    }
    raw = completion(
        {"content": None, "tool_calls": [tool_call]}, "tool_calls", prompt=80, completion=17
    )
    upstream.replies.append(Reply(body=raw))
    schema = {
        "type": "json_schema",
        "json_schema": {
            "name": "weather",
            "strict": True,
            "schema": {"type": "object", "properties": {"c": {"type": "number"}}},
        },
    }
    body = {
        "messages": [
            {"role": "developer", "content": "Use tools."},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [tool_call]},
            {"role": "tool", "tool_call_id": "call_abc", "content": "18C"},
        ],
        "tools": [WEATHER_TOOL],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": False,
        "response_format": schema,
        "n": 2,
        "user": "user-42",
        "logit_bias": {"50256": -100},
        "metadata": {"team": "search"},
    }
    result = await provider.chat(request(body))

    assert upstream.last.body == {**body, "model": MODEL}
    assert isinstance(result, ChatCompletion)
    assert result.body == raw
    assert result.data["choices"][0]["message"]["tool_calls"] == [tool_call]


async def test_reasoning_tokens_are_read(upstream: FakeUpstream, provider: OpenAIProvider) -> None:
    raw = completion({"content": "42"}, "stop", prompt=10, completion=300, reasoning=256)
    upstream.replies.append(Reply(body=raw))
    result = await provider.chat(request(HELLO))
    assert isinstance(result, ChatCompletion)
    assert result.usage.reasoning_tokens == 256


async def test_answer_without_choices_is_an_upstream_error(
    upstream: FakeUpstream, provider: OpenAIProvider
) -> None:
    upstream.replies.append(Reply(body=b'{"object": "list", "data": []}'))
    with pytest.raises(UpstreamError, match="choices"):
        await provider.chat(request(HELLO))


# --- streams ----------------------------------------------------------------------------------


async def test_stream_events_pass_through_and_usage_is_forced_upstream(
    upstream: FakeUpstream, provider: OpenAIProvider
) -> None:
    events = sse(*TEXT_STREAM, usage_chunk(prompt=9, completion=3, cached=2, reasoning=0))
    upstream.replies.append(Reply(events=events, gap_s=0.002))
    stream = await chat_stream(
        provider, {**HELLO, "stream_options": {"include_obfuscation": False}}
    )

    raw = await read_all(stream)
    # the usage chunk the gateway asked for on its own is not shown to the client
    assert raw == b"".join(events[:4] + events[5:])
    assert upstream.last.body["stream"] is True
    assert upstream.last.body["stream_options"] == {
        "include_obfuscation": False,
        "include_usage": True,
    }
    assert upstream.last.body["model"] == MODEL

    summary = stream.summary
    summary.resolve()  # the relay leaves decoding the events to the trace writer
    assert summary.model == SERVED_MODEL
    assert summary.events == 5
    assert summary.output() == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello, world"},
            "finish_reason": "stop",
        }
    ]
    assert (summary.usage.input_tokens, summary.usage.output_tokens) == (9, 3)
    assert (summary.usage.cached_tokens, summary.usage.reasoning_tokens) == (2, 0)


async def test_stream_keeps_the_usage_chunk_when_the_client_asked(
    upstream: FakeUpstream, provider: OpenAIProvider
) -> None:
    events = sse(*TEXT_STREAM, usage_chunk(prompt=9, completion=3))
    upstream.replies.append(Reply(events=events))
    stream = await chat_stream(
        provider, {**HELLO, "stream_options": {"include_usage": True}}, client_wants_usage=True
    )
    assert await read_all(stream) == b"".join(events)
    assert upstream.last.body["stream_options"] == {"include_usage": True}


async def test_stream_gathers_tool_call_deltas(
    upstream: FakeUpstream, provider: OpenAIProvider
) -> None:
    events = sse(*TOOL_STREAM, usage_chunk(prompt=120, completion=33, cached=64, reasoning=12))
    upstream.replies.append(Reply(events=events))
    stream = await chat_stream(provider, {**HELLO, "tools": [WEATHER_TOOL]})

    got = payloads(await read_all(stream))
    assert got == [*TOOL_STREAM, "[DONE]"]
    assert upstream.last.body["tools"] == [WEATHER_TOOL]
    summary = stream.summary
    assert summary.output() == [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "get_time", "arguments": '{"tz": "CET"}'},
                    },
                ],
            },
            "finish_reason": "tool_calls",
        }
    ]
    usage_ = summary.usage
    assert (usage_.input_tokens, usage_.output_tokens) == (120, 33)
    assert (usage_.cached_tokens, usage_.reasoning_tokens) == (64, 12)


async def test_stream_split_across_reads_with_crlf_line_endings(
    upstream: FakeUpstream, provider: OpenAIProvider
) -> None:
    wire = b"".join(sse(*TEXT_STREAM, usage_chunk(prompt=5, completion=2))).replace(b"\n", b"\r\n")
    pieces = [wire[i : i + 37] for i in range(0, len(wire), 37)]
    upstream.replies.append(Reply(events=pieces, gap_s=0.002))
    stream = await chat_stream(provider, HELLO)

    assert payloads(await read_all(stream)) == [*TEXT_STREAM, "[DONE]"]
    stream.summary.resolve()
    assert "".join(stream.summary.texts[0]) == "Hello, world"
    assert stream.summary.usage.input_tokens == 5


async def test_stream_with_several_choices(
    upstream: FakeUpstream, provider: OpenAIProvider
) -> None:
    second = chunk({"content": "Hi"})
    second["choices"][0]["index"] = 1
    upstream.replies.append(Reply(events=sse(chunk({"content": "Hello"}), second)))
    stream = await chat_stream(provider, {**HELLO, "n": 2})
    await read_all(stream)
    stream.summary.resolve()
    assert stream.summary.texts == {0: ["Hello"], 1: ["Hi"]}


async def test_stream_that_ends_without_done_fails_after_its_first_events(
    upstream: FakeUpstream, provider: OpenAIProvider
) -> None:
    upstream.replies.append(Reply(events=sse(*TEXT_STREAM[:2], done=False), gap_s=0.005))
    stream = await chat_stream(provider, HELLO)
    received: list[bytes] = []
    with pytest.raises(UpstreamError, match=r"before \[DONE\]"):
        async for piece in stream:
            received.append(piece)
    assert payloads(b"".join(received)) == TEXT_STREAM[:2]


async def test_error_event_before_the_first_chunk_is_raised_by_chat(
    upstream: FakeUpstream, provider: OpenAIProvider
) -> None:
    failure = {"error": {"message": "The server had an error", "type": "server_error"}}
    upstream.replies.append(Reply(events=[b"data: " + orjson.dumps(failure) + b"\n\n"]))
    with pytest.raises(UpstreamError, match="The server had an error"):
        await provider.chat(request({**HELLO, "stream": True}))


async def test_error_event_mid_stream_is_raised_by_the_iterator(
    upstream: FakeUpstream, provider: OpenAIProvider
) -> None:
    failure = {"error": {"message": "overloaded", "type": "server_error"}}
    events = [*sse(TEXT_STREAM[0], done=False), b"data: " + orjson.dumps(failure) + b"\n\n"]
    upstream.replies.append(Reply(events=events, gap_s=0.005))
    stream = await chat_stream(provider, HELLO)
    with pytest.raises(UpstreamError, match="overloaded"):
        await read_all(stream)


async def test_stream_refused_with_an_http_error(
    upstream: FakeUpstream, provider: OpenAIProvider
) -> None:
    body = error_body("Rate limit reached", "requests", "rate_limit_exceeded")
    upstream.replies.append(Reply(status=429, body=body, headers={"Retry-After": "3"}))
    with pytest.raises(RateLimited) as caught:
        await provider.chat(request({**HELLO, "stream": True}))
    assert caught.value.retry_after == 3.0


async def test_closing_a_stream_early(upstream: FakeUpstream, provider: OpenAIProvider) -> None:
    upstream.replies.append(Reply(events=sse(*TEXT_STREAM), gap_s=0.005))
    stream = await chat_stream(provider, HELLO)
    async for _ in stream:
        break
    await stream.aclose()


# --- errors -----------------------------------------------------------------------------------


async def test_429_with_retry_after_is_rate_limited(
    upstream: FakeUpstream, provider: OpenAIProvider
) -> None:
    body = error_body(
        "Rate limit reached for gpt-4o-mini in organization org-x on tokens per min (TPM): "
        "Limit 200000, Used 199500, Requested 900. Please try again in 7s.",
        "tokens",
        "rate_limit_exceeded",
    )
    upstream.replies.append(Reply(status=429, body=body, headers={"Retry-After": "7"}))
    with pytest.raises(RateLimited, match="Please try again in 7s") as caught:
        await provider.chat(request(HELLO))
    assert caught.value.retry_after == 7.0


async def test_500_is_an_upstream_error(upstream: FakeUpstream, provider: OpenAIProvider) -> None:
    body = error_body(
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
        None,
    )
    upstream.replies.append(Reply(status=500, body=body))
    with pytest.raises(UpstreamError, match="Sorry about that") as caught:
        await provider.chat(request(HELLO))
    assert type(caught.value) is UpstreamError
    assert caught.value.retry_after is None


async def test_context_length_exceeded(upstream: FakeUpstream, provider: OpenAIProvider) -> None:
    body = error_body(
        "This model's maximum context length is 128000 tokens. However, your messages resulted "
        "in 130050 tokens. Please reduce the length of the messages.",
        "invalid_request_error",
        "context_length_exceeded",
        "messages",
    )
    upstream.replies.append(Reply(status=400, body=body))
    with pytest.raises(ContextWindowExceeded, match="maximum context length"):
        await provider.chat(request(HELLO))


async def test_content_filter(upstream: FakeUpstream, provider: OpenAIProvider) -> None:
    azure_filtered = {
        "error": {
            "message": "The response was filtered due to the prompt triggering Azure OpenAI's "
            "content management policy. Please modify your prompt and retry.",
            "type": None,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
            "innererror": {
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_result": {"violence": {"filtered": True, "severity": "high"}},
            },
        }
    }
    upstream.replies.append(Reply(status=400, body=orjson.dumps(azure_filtered)))
    with pytest.raises(ContentPolicy, match="content management policy"):
        await provider.chat(request(HELLO))


async def test_other_400_keeps_the_providers_code(
    upstream: FakeUpstream, provider: OpenAIProvider
) -> None:
    body = error_body(
        "Invalid value for 'temperature'", "invalid_request_error", "invalid_value", "temperature"
    )
    upstream.replies.append(Reply(status=400, body=body))
    with pytest.raises(InvalidRequest, match="Invalid value for 'temperature'") as caught:
        await provider.chat(request(HELLO))
    assert caught.value.status == 400
    assert caught.value.code == "invalid_value"


async def test_401_points_at_the_api_key(upstream: FakeUpstream, provider: OpenAIProvider) -> None:
    body = error_body(
        "Incorrect API key provided: sk-test-123.", "invalid_request_error", "invalid_api_key"
    )
    upstream.replies.append(Reply(status=401, body=body))
    with pytest.raises(UpstreamError, match="api_key") as caught:
        await provider.chat(request(HELLO))
    assert "HTTP 401" in caught.value.message


async def test_malformed_body_is_an_upstream_error(
    upstream: FakeUpstream, provider: OpenAIProvider
) -> None:
    upstream.replies.append(Reply(body=b'{"id": "chatcmpl-1", "choices": [{"ind'))
    with pytest.raises(UpstreamError, match="malformed"):
        await provider.chat(request(HELLO))


async def test_malformed_first_stream_event_is_an_upstream_error(
    upstream: FakeUpstream, provider: OpenAIProvider
) -> None:
    upstream.replies.append(Reply(events=[b"data: {not json\n\n"]))
    with pytest.raises(UpstreamError, match="malformed"):
        await provider.chat(request({**HELLO, "stream": True}))


async def test_malformed_later_event_is_passed_through_and_counted(
    upstream: FakeUpstream, provider: OpenAIProvider
) -> None:
    upstream.replies.append(
        Reply(
            events=[*sse(*TEXT_STREAM[:2], done=False), b"data: {oops\n\n", *sse(*TEXT_STREAM[2:])]
        )
    )
    stream = await chat_stream(provider, HELLO)
    assert b"data: {oops\n\n" in await read_all(stream)
    stream.summary.resolve()
    assert stream.summary.malformed == 1


async def test_upstream_that_never_answers_times_out(
    upstream: FakeUpstream, provider: OpenAIProvider
) -> None:
    upstream.replies.append(Reply(hang=True))
    with pytest.raises(UpstreamTimeout, match=r"within 0\.2 s"):
        await provider.chat(request(HELLO, timeout_s=0.2))


async def test_stream_whose_first_event_never_comes_times_out(
    upstream: FakeUpstream, provider: OpenAIProvider
) -> None:
    upstream.replies.append(Reply(events=sse(*TEXT_STREAM), hang_after_headers=True))
    with pytest.raises(UpstreamTimeout):
        await provider.chat(request({**HELLO, "stream": True}, timeout_s=0.2))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_connection_refused_is_an_upstream_error() -> None:
    adapter = OpenAIProvider(deployment(f"http://127.0.0.1:{free_port()}/v1"))
    try:
        with pytest.raises(UpstreamError, match="could not be reached") as caught:
            await adapter.chat(request(HELLO, timeout_s=5))
        assert not isinstance(caught.value, UpstreamTimeout)
    finally:
        await adapter.aclose()


# --- Azure and embeddings ---------------------------------------------------------------------


async def test_azure_deployment_url_and_api_key(upstream: FakeUpstream) -> None:
    raw = completion({"content": "Hi"}, "stop", prompt=5, completion=1)
    upstream.replies.append(Reply(body=raw))
    adapter = OpenAIProvider(
        Deployment(
            provider="azure",
            model="gpt-4o-prod",
            api_base=upstream.url,
            api_key=SecretStr("azure-key"),
            api_version="2024-10-21",
        )
    )
    try:
        result = await adapter.chat(request(HELLO))
    finally:
        await adapter.aclose()

    seen = upstream.last
    assert seen.path == "/openai/deployments/gpt-4o-prod/chat/completions"
    assert seen.query == {"api-version": "2024-10-21"}
    assert seen.headers["api-key"] == "azure-key"
    assert "authorization" not in seen.headers
    assert isinstance(result, ChatCompletion)
    assert result.body == raw


async def test_azure_api_base_that_names_the_deployment(upstream: FakeUpstream) -> None:
    upstream.replies.append(Reply(body=b'{"object":"list","data":[],"model":"m","usage":{}}'))
    adapter = OpenAIProvider(
        Deployment(
            provider="azure",
            model="text-embedding-3-small",
            api_base=f"{upstream.url}/openai/deployments/emb-east/",
            api_version="2024-10-21",
        )
    )
    try:
        await adapter.embed({"model": "alias", "input": "x"}, 5.0)
    finally:
        await adapter.aclose()
    assert upstream.last.path == "/openai/deployments/emb-east/embeddings"
    assert upstream.last.query == {"api-version": "2024-10-21"}
    assert "api-key" not in upstream.last.headers


async def test_embeddings_pass_through(upstream: FakeUpstream, provider: OpenAIProvider) -> None:
    raw = orjson.dumps(
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": 0, "embedding": [0.0023064255, -0.009327292]},
                {"object": "embedding", "index": 1, "embedding": [-0.0028842222, 0.012237414]},
            ],
            "model": "text-embedding-3-small",
            "usage": {"prompt_tokens": 8, "total_tokens": 8},
        }
    )
    upstream.replies.append(Reply(body=raw))
    body = {"model": "emb-alias", "input": ["hello", "world"], "dimensions": 2}
    result = await provider.embed(body, 5.0)

    assert upstream.last.path == "/v1/embeddings"
    assert upstream.last.body == {**body, "model": MODEL}
    assert upstream.last.headers["authorization"] == "Bearer sk-test-123"
    assert result.body == raw
    assert result.model == "text-embedding-3-small"
    assert result.usage.input_tokens == 8


async def test_embeddings_errors(upstream: FakeUpstream, provider: OpenAIProvider) -> None:
    upstream.replies.append(Reply(status=500, body=error_body("boom", "server_error", None)))
    with pytest.raises(UpstreamError, match="boom"):
        await provider.embed({"input": "x"}, 5.0)
    upstream.replies.append(Reply(hang=True))
    with pytest.raises(UpstreamTimeout):
        await provider.embed({"input": "x"}, 0.1)
