"""The official `openai` client against a real gateway: answers, streams and traces."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import RunningGateway, config, running_gateway


def client(gw: RunningGateway, key: str = "unused") -> openai.OpenAI:
    return gw.client(key)


def test_chat_completion_is_answered_and_traced(demo_gateway: RunningGateway) -> None:
    raw = client(demo_gateway).chat.completions.with_raw_response.create(
        model="demo",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello gateway"},
        ],
        temperature=0.3,
        user="alice",
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "hello gateway"
    assert completion.usage is not None and completion.usage.completion_tokens == 2

    trace = demo_gateway.trace(raw.headers["x-controltower-trace-id"])
    assert trace["status"] == "ok"
    assert trace["user_id"] == "alice"
    assert trace["usage"]["output_tokens"] == 2
    (root,) = trace["spans"]  # a first attempt that worked adds no span of its own
    assert root["kind"] == "generation"
    assert root["input"][1] == {"role": "user", "content": "hello gateway"}
    assert root["output"]["content"] == "hello gateway"
    assert root["parameters"] == {"temperature": 0.3, "user": "alice"}
    assert root["provider"] == "mock" and root["deployment"] == "mock/demo-model"
    # price override in config: 1 $/Mtok in, 2 $/Mtok out
    expected = (root["usage"]["input_tokens"] * 1.0 + 2 * 2.0) / 1e6
    assert root["cost"] == pytest.approx(expected)
    assert trace["cost"] == pytest.approx(expected)


def test_stream_with_usage_chunk(demo_gateway: RunningGateway) -> None:
    stream = client(demo_gateway).chat.completions.create(
        model="demo",
        messages=[{"role": "user", "content": "one two three"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3


def test_stream_without_usage_chunk_is_still_traced(demo_gateway: RunningGateway) -> None:
    with client(demo_gateway).chat.completions.with_streaming_response.create(
        model="demo", messages=[{"role": "user", "content": "a b"}], stream=True
    ) as response:
        trace_id = response.headers["x-controltower-trace-id"]
        chunks = list(response.parse())
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    root = demo_gateway.trace(trace_id)["spans"][0]
    assert root["usage"]["output_tokens"] == 2
    assert root["output"]["content"] == "a b"
    assert root["ttft_ms"] is not None and root["ttft_ms"] <= root["latency_ms"]


def test_caller_headers_label_the_trace(demo_gateway: RunningGateway) -> None:
    raw = client(demo_gateway).chat.completions.with_raw_response.create(
        model="demo",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={
            "x-controltower-user": "u-42",
            "x-controltower-session": "s-7",
            "x-controltower-tags": "beta, search",
            "x-controltower-metadata": '{"feature": "faq", "ab": 2}',
        },
    )
    trace = demo_gateway.trace(raw.headers["x-controltower-trace-id"])
    assert trace["user_id"] == "u-42" and trace["session_id"] == "s-7"
    assert trace["tags"] == ["beta", "search"]
    assert trace["metadata"] == {"feature": "faq", "ab": 2}


def test_models_and_embeddings(demo_gateway: RunningGateway) -> None:
    c = client(demo_gateway)
    assert [m.id for m in c.models.list()] == ["demo"]
    result = c.embeddings.create(model="demo", input=["alpha", "beta"])
    assert len(result.data) == 2 and len(result.data[0].embedding) == 8
    again = c.embeddings.create(model="demo", input="alpha")
    assert again.data[0].embedding == result.data[0].embedding


def test_n_choices_and_async_client() -> None:
    import asyncio

    with running_gateway(
        config("""
models:
  - name: scripted
    deployments:
      - provider: mock
        model: m
        mock: {replies: ["first", "second"]}
""")
    ) as gw:

        async def run() -> list[str]:
            c = openai.AsyncOpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
            out = []
            for _ in range(2):
                r = await c.chat.completions.create(
                    model="scripted", n=2, messages=[{"role": "user", "content": "?"}]
                )
                assert len(r.choices) == 2
                out.append(r.choices[0].message.content or "")
            await c.close()
            return out

        assert asyncio.run(run()) == ["first", "second"]


TOOLS = """
models:
  - name: agent
    deployments:
      - provider: mock
        model: m
        mock:
          replies:
            - {tool: get_weather, arguments: {city: Paris}}
            - "It is sunny in Paris."
"""

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.mark.parametrize("stream", [False, True])
def test_tool_call_round_trip(stream: bool) -> None:
    with running_gateway(config(TOOLS)) as gw:
        c = client(gw)
        messages: list[dict[str, object]] = [{"role": "user", "content": "Weather in Paris?"}]
        if stream:
            chunks = list(
                c.chat.completions.create(
                    model="agent", messages=messages, tools=[WEATHER_TOOL], stream=True
                )
            )
            deltas = [d for ch in chunks for d in (ch.choices[0].delta.tool_calls or [])]
            name = deltas[0].function.name
            arguments = "".join(d.function.arguments or "" for d in deltas)
            call_id = deltas[0].id
            assert chunks[-1].choices[0].finish_reason == "tool_calls"
        else:
            first = c.chat.completions.create(
                model="agent", messages=messages, tools=[WEATHER_TOOL], tool_choice="auto"
            )
            assert first.choices[0].finish_reason == "tool_calls"
            call = first.choices[0].message.tool_calls[0]
            name, arguments, call_id = call.function.name, call.function.arguments, call.id
        assert name == "get_weather" and arguments == '{"city":"Paris"}'
        messages += [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": name, "arguments": arguments},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call_id, "content": "sunny"},
        ]
        raw = c.chat.completions.with_raw_response.create(
            model="agent",
            messages=messages,
            tools=[WEATHER_TOOL],
            response_format={"type": "text"},
        )
        assert raw.parse().choices[0].message.content == "It is sunny in Paris."
        root = gw.trace(raw.headers["x-controltower-trace-id"])["spans"][0]
        assert root["input"][1]["tool_calls"][0]["function"]["name"] == "get_weather"
        assert root["parameters"]["tools"] == [WEATHER_TOOL]
        assert root["parameters"]["response_format"] == {"type": "text"}
