"""Partial records (SDK, OTLP, a gateway call inside an SDK trace) merge into one trace."""

from __future__ import annotations

from controltower.domain import Span, Trace, TraceRecord, Usage

from .conftest import TraceStore
from .records import T0

TID = "ab" * 16


def piece(*spans: Span, **trace: object) -> TraceRecord:
    """A partial record holding some spans of trace TID."""
    start = min((s.start_us for s in spans), default=T0)
    ends = [s.end_us for s in spans if s.end_us is not None]
    fields: dict[str, object] = {"name": "", **trace}
    record = TraceRecord(
        Trace(id=TID, start_us=start, end_us=max(ends) if ends else None, **fields),  # type: ignore[arg-type]
        list(spans),
        partial=True,
    )
    record.roll_up()
    return record


def span(n: int, parent: int | None, kind: str = "span", **fields: object) -> Span:
    return Span(
        id=f"{n:016x}",
        trace_id=TID,
        parent_id=None if parent is None else f"{parent:016x}",
        name=f"span-{n}",
        kind=kind,  # type: ignore[arg-type]
        start_us=T0 + n * 100,
        end_us=T0 + n * 100 + 50,
        **fields,  # type: ignore[arg-type]
    )


def generation(n: int, parent: int | None, tokens: int, cost: float | None = None) -> Span:
    usage = Usage(input_tokens=tokens, output_tokens=1)
    return span(n, parent, "generation", model=f"model-{n}", usage=usage, cost=cost)


def test_children_first_then_root_sets_name_and_totals(store: TraceStore) -> None:
    store.write([piece(generation(2, 1, 10, 0.5), span(3, 1, "tool"))])
    early = store.get_trace(TID)
    assert early is not None and early["name"] == "span-2"  # provisional, until the root
    assert early["usage"]["input_tokens"] == 10
    root = span(1, None, input="question", output="answer")
    root.end_us = T0 + 10_000
    store.write([piece(root, name="agent", input="question", output="answer", user_id="u9")])
    trace = store.get_trace(TID)
    assert trace is not None
    assert trace["name"] == "agent" and trace["input"] == "question"
    assert trace["user_id"] == "u9" and trace["model"] == "model-2"
    assert trace["start_time"].endswith("20.000100Z")
    assert trace["latency_ms"] == 9.9
    assert trace["usage"] == {
        "input_tokens": 10,
        "output_tokens": 1,
        "cached_tokens": None,
        "reasoning_tokens": None,
        "total_tokens": 11,
    }
    assert trace["cost"] == 0.5
    assert [s["id"] for s in trace["spans"]] == [f"{n:016x}" for n in (1, 2, 3)]


def test_a_piece_without_the_root_does_not_rename_the_trace(store: TraceStore) -> None:
    store.write([piece(span(1, None), name="root-name", status="ok")])
    store.write([piece(span(2, 1, status="error"), name="other", status="error")])
    trace = store.get_trace(TID)
    assert trace is not None
    assert trace["name"] == "root-name" and trace["status"] == "ok"


def test_labels_merge_tags_union_and_metadata(store: TraceStore) -> None:
    store.write([piece(span(1, None), tags=["a"], metadata={"x": 1}, session_id="s")])
    store.write([piece(tags=["b", "a"], metadata={"y": 2})])  # an explicit trace update
    trace = store.get_trace(TID)
    assert trace is not None
    assert trace["tags"] == ["a", "b"] and trace["metadata"] == {"x": 1, "y": 2}
    assert trace["session_id"] == "s"


def test_a_generation_under_a_generation_is_not_counted_twice(store: TraceStore) -> None:
    # the SDK's span around a call, and the gateway's span of the same call under it
    # (the SDK's model name may have no price; the gateway's span knows the deployment's)
    store.write([piece(generation(1, None, 100, None))])
    store.write([piece(generation(2, 1, 100, 1.0))])
    trace = store.get_trace(TID)
    assert trace is not None
    assert trace["usage"]["input_tokens"] == 100 and trace["cost"] == 1.0


def test_embedding_calls_count_too(store: TraceStore) -> None:
    call = span(2, 1, "embedding", usage=Usage(input_tokens=40), cost=0.002)
    store.write([piece(span(1, None), generation(3, 1, 10, 0.01), call)])
    trace = store.get_trace(TID)
    assert trace is not None
    assert trace["usage"]["input_tokens"] == 50 and trace["cost"] == 0.012


def test_resending_a_piece_changes_nothing(store: TraceStore) -> None:
    batch = piece(span(1, None), generation(2, 1, 7, 0.1))
    store.write([batch])
    store.write([piece(span(1, None), generation(2, 1, 7, 0.1))])
    trace = store.get_trace(TID)
    assert trace is not None
    assert len(trace["spans"]) == 2 and trace["usage"]["input_tokens"] == 7


def test_pieces_of_one_trace_in_one_batch(store: TraceStore) -> None:
    store.write([piece(generation(2, 1, 3)), piece(span(1, None), name="root")])
    trace = store.get_trace(TID)
    assert trace is not None
    assert trace["name"] == "root" and trace["usage"]["input_tokens"] == 3


def test_a_trace_update_without_spans_keeps_an_error_status(store: TraceStore) -> None:
    store.write([piece(span(1, None, status="error"), name="root", status="error")])
    store.write([piece(user_id="u1")])  # ct.update_trace(user_id=...) after the root ended
    trace = store.get_trace(TID)
    assert trace is not None
    assert trace["status"] == "error" and trace["user_id"] == "u1"


def test_concurrent_merges_into_one_trace_lose_nothing(store: TraceStore) -> None:
    # two writers (threads here; replicas in production) merging pieces of the same trace
    import threading

    def write(first: int) -> None:
        for n in range(first, first + 40, 2):
            store.write([piece(generation(n, 1, 1, 0.5))])

    threads = [threading.Thread(target=write, args=(start,)) for start in (2, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    trace = store.get_trace(TID)
    assert trace is not None
    assert len(trace["spans"]) == 40 and trace["usage"]["input_tokens"] == 40
    assert trace["cost"] == 20.0


def test_a_piece_resent_within_one_batch_is_stored_once(store: TraceStore) -> None:
    store.write([piece(span(1, None), generation(2, 1, 7, 0.1)), piece(generation(2, 1, 7, 0.1))])
    trace = store.get_trace(TID)
    assert trace is not None
    assert len(trace["spans"]) == 2 and trace["usage"]["input_tokens"] == 7
