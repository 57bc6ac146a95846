"""A RAG application under test: it retrieves passages, answers, and records its trace."""

from __future__ import annotations

from typing import Any

from controltower.domain import Span, Trace, TraceRecord, now_us
from controltower.tracing import ObservabilityStore

PASSAGES = {
    "refund": ["Refunds are accepted within 30 days.", "Opened items get store credit."],
    "shipping": ["Orders ship within two working days."],
}
STORE: ObservabilityStore | None = None  # the test sets it: where the app sends its traces


def answer(question: str) -> dict[str, Any]:
    """Answer from the passages of the question's topic; return the trace's id."""
    topic = "refund" if "refund" in question else "shipping"
    start = now_us()
    trace_id = f"{abs(hash((question, start))):032x}"[:32]
    trace = Trace(id=trace_id, name="rag-app", start_us=start, end_us=start + 2_000)
    root = Span("a" * 16, trace_id, "answer", "span", start, start + 2_000)
    search = Span("b" * 16, trace_id, "search", "retrieval", start + 100, start + 900, root.id)
    search.output = [
        {"document": {"content": text, "id": i}} for i, text in enumerate(PASSAGES[topic])
    ]
    assert STORE is not None
    STORE.write([TraceRecord(trace=trace, spans=[root, search])])
    return {"output": PASSAGES[topic][0], "trace_id": trace_id}
