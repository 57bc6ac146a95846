"""Builders of TraceRecords for the store tests."""

from __future__ import annotations

from typing import Any

from controltower.domain import Span, Trace, TraceRecord, Usage

T0 = 1_700_000_000_000_000  # 2023-11-14T22:13:20Z in microseconds


def make_record(
    n: int, *, project: str = "default", start_us: int | None = None, output: Any = "hi"
) -> TraceRecord:
    """A trace with a root span and a generation span, its totals rolled up."""
    trace_id = f"{n:032x}"
    start = T0 + n * 1_000 if start_us is None else start_us
    trace = Trace(
        id=trace_id,
        name=f"trace-{n}",
        start_us=start,
        end_us=start + 2_500,
        project=project,
        session_id="s1",
        user_id="u1",
        tags=["a", "b"],
        metadata={"k": "v", "n": 1},
        input={"messages": [{"role": "user", "content": "hi"}]},
        output=output,
        environment="test",
        release="1.0",
    )
    root = Span(id=f"{2 * n:016x}", trace_id=trace_id, name="root", kind="span", start_us=start)
    root.end_us = start + 2_500
    generation = Span(
        id=f"{2 * n + 1:016x}",
        trace_id=trace_id,
        parent_id=root.id,
        name="chat",
        kind="generation",
        start_us=start + 100,
        end_us=start + 2_100,
        input=[{"role": "user", "content": "hi"}],
        output="hello",
        model="gpt-4o-mini",
        provider="openai",
        deployment="openai/gpt-4o-mini",
        parameters={"temperature": 0.2},
        usage=Usage(input_tokens=10, output_tokens=5, cached_tokens=2, reasoning_tokens=1),
        cost=0.0015,
        ttft_us=400,
        prompt_name="greet",
        prompt_version=3,
        attributes={"gen_ai.operation.name": "chat"},
    )
    record = TraceRecord(trace=trace, spans=[generation, root])
    record.roll_up()
    return record
