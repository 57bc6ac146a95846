"""Span attributes of each convention → canonical span fields."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from controltower.domain import Span
from controltower.ingest.semconv import SpanEvent, TraceFacts, map_span


def mapped(
    attributes: dict[str, Any],
    events: list[SpanEvent] | None = None,
    status: tuple[int, str] = (0, ""),
) -> tuple[Span, TraceFacts]:
    span = Span(id="b7ad6b7169203331", trace_id="0" * 31 + "1", name="op", kind="span", start_us=1)
    facts = TraceFacts()
    map_span(span, dict(attributes), events or [], status, facts)
    return span, facts


def test_genai_new_names() -> None:
    span, _ = mapped(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
            "gen_ai.request.temperature": 0.2,
            "gen_ai.request.top_p": 0.9,
            "gen_ai.request.max_tokens": 256,
            "gen_ai.request.stop_sequences": ["\n\n"],
            "gen_ai.request.seed": 7,
            "gen_ai.request.reasoning_effort": "low",
            "gen_ai.usage.input_tokens": 120,
            "gen_ai.usage.output_tokens": 40,
            "gen_ai.usage.cache_read.input_tokens": 100,
            "gen_ai.usage.reasoning.output_tokens": 12,
            "gen_ai.response.time_to_first_chunk": 0.25,
            "gen_ai.response.id": "chatcmpl-1",
            "server.address": "api.openai.com",
        }
    )
    assert span.kind == "generation"
    assert span.model == "gpt-4o-mini-2024-07-18"
    assert span.provider == "openai"
    assert span.parameters == {
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 256,
        "stop": ["\n\n"],
        "seed": 7,
        "reasoning_effort": "low",
    }
    usage = span.usage
    assert (usage.input_tokens, usage.output_tokens) == (120, 40)
    assert (usage.cached_tokens, usage.reasoning_tokens) == (100, 12)
    assert span.ttft_us == 250_000
    assert span.cost is None  # priced later by the writer
    assert span.attributes == {
        "gen_ai.response.id": "chatcmpl-1",
        "server.address": "api.openai.com",
        "gen_ai.request.model": "gpt-4o-mini",  # kept: it differs from the model that answered
    }


def test_genai_messages_become_openai_messages() -> None:
    system = [{"type": "text", "content": "Be brief."}]
    inputs = [
        {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": "c1", "name": "weather", "arguments": {"city": "Paris"}}
            ],
        },
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": "rain"}]},
    ]
    outputs = [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "It "}, {"type": "text", "content": "rains."}],
            "finish_reason": "stop",
        }
    ]
    span, _ = mapped(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.system_instructions": orjson.dumps(system).decode(),
            "gen_ai.input.messages": orjson.dumps(inputs).decode(),
            "gen_ai.output.messages": orjson.dumps(outputs).decode(),
        }
    )
    assert span.input == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "rain"},
    ]
    assert span.output == {"role": "assistant", "content": "It rains.", "finish_reason": "stop"}
    assert span.attributes == {}


def test_genai_deprecated_names() -> None:
    span, _ = mapped(
        {
            "gen_ai.system": "Anthropic",
            "gen_ai.request.model": "claude-3-5-sonnet-20241022",
            "gen_ai.usage.prompt_tokens": 30,
            "gen_ai.usage.completion_tokens": 5,
            "gen_ai.prompt.0.role": "user",
            "gen_ai.prompt.0.content": "hi",
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.content": "hello",
            "gen_ai.completion.0.finish_reason": "stop",
        }
    )
    assert span.kind == "generation"  # a model and no other hint
    assert span.provider == "anthropic"
    assert span.model == "claude-3-5-sonnet-20241022"
    assert (span.usage.input_tokens, span.usage.output_tokens) == (30, 5)
    assert span.input == [{"role": "user", "content": "hi"}]
    assert span.output == {"role": "assistant", "content": "hello", "finish_reason": "stop"}


def test_genai_message_events_and_content_events() -> None:
    events: list[SpanEvent] = [
        ("gen_ai.system.message", 2, {"content": "Be brief."}),
        ("gen_ai.user.message", 3, {"content": "hi"}),
        ("gen_ai.choice", 4, {"index": 0, "finish_reason": "stop", "message": {"content": "yo"}}),
        ("retry", 5, {"attempt": 2}),
    ]
    span, _ = mapped({"gen_ai.operation.name": "chat"}, events)
    assert span.input == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]
    assert span.output == {"role": "assistant", "content": "yo", "finish_reason": "stop"}
    assert span.attributes["otel.events"] == [
        {"name": "retry", "time_us": 5, "attributes": {"attempt": 2}}
    ]
    old, _ = mapped(
        {"gen_ai.operation.name": "text_completion"},
        [
            ("gen_ai.content.prompt", 2, {"gen_ai.prompt": "Say hi"}),
            ("gen_ai.content.completion", 3, {"gen_ai.completion": "hi"}),
        ],
    )
    assert (old.input, old.output) == ("Say hi", "hi")


@pytest.mark.parametrize(
    ("operation", "kind"),
    [
        ("chat", "generation"),
        ("generate_content", "generation"),
        ("text_completion", "generation"),
        ("embeddings", "embedding"),
        ("execute_tool", "tool"),
        ("invoke_agent", "span"),
        ("something_new", "span"),
    ],
)
def test_genai_operation_names(operation: str, kind: str) -> None:
    span, _ = mapped({"gen_ai.operation.name": operation, "gen_ai.request.model": "m"})
    assert span.kind == kind
    if kind == "span":  # the operation says more than "span": kept
        assert span.attributes["gen_ai.operation.name"] == operation


def test_genai_tool_call() -> None:
    span, _ = mapped(
        {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "weather",
            "gen_ai.tool.call.arguments": '{"city": "Paris"}',
            "gen_ai.tool.call.result": "rain",
        }
    )
    assert span.kind == "tool"
    assert (span.input, span.output) == ({"city": "Paris"}, "rain")
    assert span.attributes == {"gen_ai.tool.name": "weather"}


def test_openinference_llm_span() -> None:
    span, facts = mapped(
        {
            "openinference.span.kind": "LLM",
            "llm.model_name": "gpt-4o",
            "llm.provider": "openai",
            "llm.system": "openai",
            "llm.token_count.prompt": 50,
            "llm.token_count.completion": 10,
            "llm.token_count.total": 60,
            "llm.token_count.prompt_details.cache_read": 20,
            "llm.token_count.completion_details.reasoning": 4,
            "llm.invocation_parameters": '{"temperature": 0.1, "max_tokens": 100}',
            "llm.input_messages.0.message.role": "system",
            "llm.input_messages.0.message.content": "Be brief.",
            "llm.input_messages.1.message.role": "user",
            "llm.input_messages.1.message.contents.0.message_content.type": "text",
            "llm.input_messages.1.message.contents.0.message_content.text": "What is this?",
            "llm.input_messages.1.message.contents.1.message_content.type": "image",
            "llm.input_messages.1.message.contents.1.message_content.image.image.url": "http://x/a.png",
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.tool_calls.0.tool_call.id": "call_1",
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "lookup",
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": "{}",
            "input.value": '{"messages": []}',
            "input.mime_type": "application/json",
            "output.value": "ignored: the messages say more",
            "session.id": "s-1",
            "user.id": "u-1",
            "tag.tags": ["beta", "web"],
            "metadata": '{"feature": "search"}',
        }
    )
    assert span.kind == "generation"
    assert (span.model, span.provider) == ("gpt-4o", "openai")
    assert span.parameters == {"temperature": 0.1, "max_tokens": 100}
    usage = span.usage
    assert (usage.input_tokens, usage.output_tokens, usage.cached_tokens) == (50, 10, 20)
    assert usage.reasoning_tokens == 4
    assert span.input == [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "http://x/a.png"}},
            ],
        },
    ]
    assert span.output == {
        "role": "assistant",
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
        ],
    }
    assert (facts.session_id, facts.user_id, facts.tags) == ("s-1", "u-1", ["beta", "web"])
    assert facts.metadata == {"feature": "search"}
    assert span.attributes == {}


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("LLM", "generation"),
        ("CHAIN", "span"),
        ("TOOL", "tool"),
        ("RETRIEVER", "retrieval"),
        ("RERANKER", "retrieval"),
        ("EMBEDDING", "embedding"),
        ("AGENT", "span"),
        ("GUARDRAIL", "guardrail"),
        ("EVALUATOR", "span"),
    ],
)
def test_openinference_span_kinds(kind: str, expected: str) -> None:
    span, _ = mapped({"openinference.span.kind": kind, "llm.model_name": "m"})
    assert span.kind == expected
    if expected == "span":
        assert span.attributes["openinference.span.kind"] == kind


def test_openinference_chain_and_retriever_values() -> None:
    chain, _ = mapped(
        {
            "openinference.span.kind": "CHAIN",
            "input.value": '{"question": "why?"}',
            "input.mime_type": "application/json",
            "output.value": "because",
            "output.mime_type": "text/plain",
        }
    )
    assert (chain.input, chain.output) == ({"question": "why?"}, "because")
    plain, _ = mapped({"openinference.span.kind": "CHAIN", "input.value": '{"a": 1}'})
    assert plain.input == '{"a": 1}'  # text/plain is the default mime type
    retriever, _ = mapped(
        {
            "openinference.span.kind": "RETRIEVER",
            "input.value": "why?",
            "retrieval.documents.0.document.id": "d1",
            "retrieval.documents.0.document.content": "Because.",
            "retrieval.documents.0.document.score": 0.9,
            "retrieval.documents.0.document.metadata": '{"source": "faq"}',
            "retrieval.documents.1.document.id": "d2",
        }
    )
    assert retriever.kind == "retrieval"
    assert retriever.input == "why?"
    assert retriever.output == [
        {"id": "d1", "content": "Because.", "score": 0.9, "metadata": {"source": "faq"}},
        {"id": "d2"},
    ]


def test_openllmetry_spans() -> None:
    llm, facts = mapped(
        {
            "llm.request.type": "chat",
            "gen_ai.system": "OpenAI",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
            "llm.usage.total_tokens": 15,
            "gen_ai.usage.prompt_tokens": 10,
            "gen_ai.usage.completion_tokens": 5,
            "gen_ai.usage.cache_read_input_tokens": 2,
            "llm.is_streaming": False,
            "gen_ai.prompt.0.role": "user",
            "gen_ai.prompt.0.content": "hi",
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.content": None,
            "gen_ai.completion.0.tool_calls.0.id": "t1",
            "gen_ai.completion.0.tool_calls.0.name": "search",
            "gen_ai.completion.0.tool_calls.0.arguments": '{"q": "x"}',
            "traceloop.association.properties.user_id": "u-7",
            "traceloop.association.properties.session_id": "s-7",
            "traceloop.association.properties.team": "core",
            "traceloop.workflow.name": "answer",
        }
    )
    assert llm.kind == "generation"
    assert (llm.provider, llm.model) == ("openai", "gpt-4o-mini-2024-07-18")
    assert (llm.usage.input_tokens, llm.usage.output_tokens, llm.usage.cached_tokens) == (10, 5, 2)
    assert llm.parameters == {"stream": False}
    assert llm.input == [{"role": "user", "content": "hi"}]
    assert llm.output == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "t1",
                "type": "function",
                "function": {"name": "search", "arguments": '{"q": "x"}'},
            }
        ],
    }
    assert (facts.user_id, facts.session_id, facts.metadata) == ("u-7", "s-7", {"team": "core"})
    assert llm.attributes == {
        "traceloop.workflow.name": "answer",
        "gen_ai.request.model": "gpt-4o-mini",
    }

    task, _ = mapped(
        {
            "traceloop.span.kind": "task",
            "traceloop.entity.name": "summarize",
            "traceloop.entity.input": '{"args": ["text"], "kwargs": {}}',
            "traceloop.entity.output": '"summary"',
        }
    )
    assert task.kind == "span"
    assert task.input == {"args": ["text"], "kwargs": {}}
    assert task.output == '"summary"'  # JSON text that is not an object or array stays text
    assert task.attributes == {"traceloop.span.kind": "task", "traceloop.entity.name": "summarize"}
    tool, _ = mapped({"traceloop.span.kind": "tool", "traceloop.entity.name": "search"})
    assert tool.kind == "tool"


def test_stated_cost_is_kept_and_unparseable_counts_ignored() -> None:
    span, _ = mapped(
        {
            "gen_ai.request.model": "m",
            "gen_ai.usage.cost": 0.0123,
            "gen_ai.usage.input_tokens": "12",
            "gen_ai.usage.output_tokens": "many",
        }
    )
    assert span.cost == 0.0123
    assert (span.usage.input_tokens, span.usage.output_tokens) == (12, None)
    openinference, _ = mapped({"llm.model_name": "m", "llm.cost.total": 0.5})
    assert openinference.cost == 0.5


def test_total_tokens_alone_is_kept_as_an_attribute() -> None:
    span, _ = mapped({"gen_ai.request.model": "m", "llm.usage.total_tokens": 9})
    assert span.usage.total_tokens is None
    assert span.attributes["total_tokens"] == 9


def test_status_and_exceptions() -> None:
    exception = {
        "exception.type": "RateLimitError",
        "exception.message": "slow down",
        "exception.stacktrace": "Traceback ...",
    }
    failed, _ = mapped({}, [("exception", 2, exception)], status=(2, "boom"))
    assert (failed.status, failed.error) == ("error", "RateLimitError: slow down")
    assert failed.attributes == {"exception.stacktrace": "Traceback ..."}
    bare, _ = mapped({}, status=(2, "boom"))
    assert (bare.status, bare.error) == ("error", "boom")
    unset, _ = mapped({}, [("exception", 2, exception)])
    assert unset.status == "error"  # an exception on a span whose status was left unset
    handled, _ = mapped({}, [("exception", 2, exception)], status=(1, ""))
    assert (handled.status, handled.error) == ("ok", None)
    assert handled.attributes["exception"] == "RateLimitError: slow down"
    fine, _ = mapped({}, status=(1, ""))
    assert (fine.status, fine.error) == ("ok", None)


def test_labels_from_other_names() -> None:
    _, facts = mapped(
        {"enduser.id": "u-9", "gen_ai.conversation.id": "conv-1", "tag.tags": '["a", "b"]'}
    )
    assert (facts.user_id, facts.session_id, facts.tags) == ("u-9", "conv-1", ["a", "b"])


def test_azure_provider_names_are_normalised() -> None:
    span, _ = mapped({"gen_ai.provider.name": "azure.ai.openai", "gen_ai.request.model": "m"})
    assert span.provider == "azure"
