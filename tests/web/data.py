"""Traces for the UI tests: a small agent conversation, and one very large trace."""

from __future__ import annotations

from typing import Any

from controltower.domain import Span, Trace, TraceRecord, Usage, now_us

MINUTE_US = 60_000_000
SESSION = "chat-42"
BIG_TRACE_ID = "b" * 32
ERROR_TRACE_ID = "e" * 32
WEATHER_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}


def trace_id(n: int) -> str:
    """The id of the n-th conversation trace."""
    return f"{n:032x}"


def conversation(n: int, *, user: str, session: str, start_us: int, question: str) -> TraceRecord:
    """An agent turn: retrieval, a tool call and two model calls under a root span."""
    tid = trace_id(n)
    trace = Trace(
        id=tid,
        name="support-agent",
        start_us=start_us,
        end_us=start_us + 2_400_000,
        user_id=user,
        session_id=session,
        tags=["prod", "agent"] if n % 2 else ["prod"],
        metadata={"tenant": "acme" if n % 2 else "globex", "plan": "pro"},
        input={"messages": [{"role": "user", "content": question}]},
        output={"role": "assistant", "content": f"Answer {n}: it is sunny in Paris."},
        environment="production",
        release="2024.05.1",
    )
    root = _span(tid, n, 0, "agent", "span", start_us, 2_400_000)
    root.input = {"question": question}
    retrieval = _span(tid, n, 1, "search-docs", "retrieval", start_us + 50_000, 300_000, root.id)
    retrieval.output = [{"id": "doc-1", "text": "Paris weather guide"}, {"id": "doc-2"}]
    first = _generation(tid, n, 2, start_us + 400_000, root.id, question)
    tool = _span(tid, n, 3, "get_weather", "tool", start_us + 1_200_000, 200_000, root.id)
    tool.input = {"city": "Paris"}
    tool.output = {"temperature_c": 21, "sky": "sunny"}
    second = _final_generation(tid, n, 4, start_us + 1_450_000, root.id, question)
    record = TraceRecord(trace=trace, spans=[root, retrieval, first, tool, second])
    record.roll_up()
    return record


def failed_trace(start_us: int) -> TraceRecord:
    """A trace whose model call failed."""
    trace = Trace(
        id=ERROR_TRACE_ID,
        name="summarize",
        start_us=start_us,
        end_us=start_us + 900_000,
        user_id="bob",
        status="error",
        tags=["batch"],
        input="Summarize the quarterly report",
    )
    span = _span(ERROR_TRACE_ID, 99, 0, "chat", "generation", start_us, 900_000)
    span.status = "error"
    span.error = "upstream_timeout: the provider did not answer within 30 s"
    span.model = "gpt-4o"
    span.input = [{"role": "user", "content": "Summarize the quarterly report"}]
    record = TraceRecord(trace=trace, spans=[span])
    record.roll_up()
    return record


def big_trace(start_us: int, spans: int = 3_200, text_chars: int = 1_200) -> TraceRecord:
    """A trace of `spans` spans, nested a few levels deep, with MBs of input and output."""
    trace = Trace(
        id=BIG_TRACE_ID,
        name="batch-pipeline",
        start_us=start_us,
        end_us=start_us + spans * 1_000 + 10_000,
        user_id="batch-bot",
        input="big",
    )
    made: list[Span] = []
    root = _span(BIG_TRACE_ID, 0, 0, "pipeline", "span", start_us, spans * 1_000 + 10_000)
    made.append(root)
    parents = [root.id]
    filler = "lorem ipsum dolor sit amet " * (text_chars // 27 + 1)
    for i in range(1, spans):
        parent = parents[i % len(parents)]
        kind = "generation" if i % 3 == 0 else "span"
        span = _span(BIG_TRACE_ID, i, 0, f"step-{i}", kind, start_us + i * 1_000, 5_000, parent)
        span.input = [{"role": "user", "content": f"question {i} " + filler[:text_chars]}]
        span.output = {"role": "assistant", "content": f"answer {i} " + filler[:text_chars]}
        if kind == "generation":
            span.model = "gpt-4o-mini"
            span.usage = Usage(input_tokens=100, output_tokens=20)
        if i % 50 == 0:
            parents.append(span.id)  # some spans get children: a tree a few levels deep
        made.append(span)
    # one span with a single huge text, to exercise truncation in the detail pane
    made[1].output = "x" * 1_500_000
    record = TraceRecord(trace=trace, spans=made)
    record.roll_up()
    return record


def seed(store: Any) -> int:
    """Write the UI tests' traces; returns the start time of the newest conversation."""
    now = now_us()
    questions = ["What is the weather in Paris?", "And tomorrow?", "Thanks! Anything else?"]
    records = [
        conversation(
            n + 1,
            user="alice",
            session=SESSION,
            start_us=now - (30 - n) * MINUTE_US,
            question=questions[n],
        )
        for n in range(3)
    ]
    records.append(
        conversation(
            4, user="carol", session="chat-7", start_us=now - 20 * MINUTE_US, question="Hi"
        )
    )
    records.append(failed_trace(now - 10 * MINUTE_US))
    records.append(big_trace(now - 40 * MINUTE_US))
    store.write(records)
    return now


def _span(
    tid: str,
    n: int,
    i: int,
    name: str,
    kind: Any,
    start_us: int,
    duration_us: int,
    parent: str | None = None,
) -> Span:
    return Span(
        id=f"{n:08x}{i:08x}",
        trace_id=tid,
        name=name,
        kind=kind,
        start_us=start_us,
        end_us=start_us + duration_us,
        parent_id=parent,
    )


def _generation(tid: str, n: int, i: int, start: int, parent: str, question: str) -> Span:
    span = _span(tid, n, i, "plan", "generation", start, 700_000, parent)
    span.model, span.provider = "gpt-4o-mini", "openai"
    span.parameters = {"temperature": 0.2, "tool_choice": "auto"}
    span.input = [
        {"role": "system", "content": "You are a helpful support agent."},
        {"role": "user", "content": question},
    ]
    span.output = {
        "role": "assistant",
        "content": None,
        "tool_calls": [WEATHER_CALL],
    }
    span.usage = Usage(input_tokens=120, output_tokens=18)
    span.cost = 0.000_030
    span.ttft_us = 180_000
    return span


def _final_generation(tid: str, n: int, i: int, start: int, parent: str, question: str) -> Span:
    span = _span(tid, n, i, "answer", "generation", start, 900_000, parent)
    span.model, span.provider = "gpt-4o-mini", "openai"
    span.input = [
        {"role": "system", "content": "You are a helpful support agent."},
        {"role": "user", "content": question},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [WEATHER_CALL],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temperature_c": 21}'},
    ]
    span.output = {"role": "assistant", "content": f"Answer {n}: it is sunny in Paris."}
    span.usage = Usage(input_tokens=210, output_tokens=12, cached_tokens=64)
    span.cost = 0.000_041
    span.ttft_us = 220_000
    return span
