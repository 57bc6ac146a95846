"""TraceWriter: batches, flush, drops when full, retries, shutdown and enrichment."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence

import pytest

from controltower.domain import Span, Trace, TraceRecord, Usage
from controltower.tracing import InMemorySink, TraceWriter


def record(n: int, *costs: float | None) -> TraceRecord:
    trace_id = f"{n:032x}"
    spans = [
        Span(
            id=f"{n:08x}{i:08x}",
            trace_id=trace_id,
            name="chat",
            kind="generation",
            start_us=1,
            usage=Usage(input_tokens=10, output_tokens=2),
            cost=cost,
        )
        for i, cost in enumerate(costs)
    ]
    return TraceRecord(Trace(id=trace_id, name="chat", start_us=1), spans)


class BatchSink(InMemorySink):
    """Remembers the size of each batch and can hold writes until released."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []
        self.gate = threading.Event()
        self.gate.set()
        self.delay_s = 0.0

    def write(self, records: Sequence[TraceRecord]) -> None:
        self.gate.wait(5)
        time.sleep(self.delay_s)
        super().write(records)
        self.batches.append(len(records))


@pytest.fixture
def sink() -> BatchSink:
    return BatchSink()


@pytest.fixture
def writers(sink: BatchSink) -> Iterator[list[TraceWriter]]:
    made: list[TraceWriter] = []
    yield made
    sink.gate.set()
    for writer in made:
        writer.shutdown(timeout_s=2)


def start(writers: list[TraceWriter], writer: TraceWriter) -> TraceWriter:
    writers.append(writer)
    writer.start()
    return writer


def test_records_are_written_in_batches(sink: BatchSink, writers: list[TraceWriter]) -> None:
    writer = TraceWriter(sink, batch_size=3, flush_interval_s=10)
    writers.append(writer)
    records = [record(i, None) for i in range(7)]
    assert all(writer.enqueue(r) for r in records)
    writer.start()

    assert writer.flush(timeout_s=5)
    assert sink.records == records
    assert sink.batches == [3, 3, 1]
    assert (writer.stats.enqueued, writer.stats.written, writer.stats.dropped) == (7, 7, 0)
    assert writer.queue_depth == 0


def test_a_full_batch_is_written_without_waiting_for_the_interval(
    sink: BatchSink, writers: list[TraceWriter]
) -> None:
    writer = start(writers, TraceWriter(sink, batch_size=2, flush_interval_s=30))
    writer.enqueue(record(1, None))
    writer.enqueue(record(2, None))
    deadline = time.monotonic() + 5
    while len(sink.records) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert len(sink.records) == 2


def test_the_interval_writes_a_partial_batch(sink: BatchSink, writers: list[TraceWriter]) -> None:
    writer = start(writers, TraceWriter(sink, batch_size=100, flush_interval_s=0.02))
    writer.enqueue(record(1, None))
    deadline = time.monotonic() + 5
    while not sink.records and time.monotonic() < deadline:
        time.sleep(0.005)
    assert len(sink.records) == 1


def test_flush_waits_for_a_slow_sink(sink: BatchSink, writers: list[TraceWriter]) -> None:
    sink.delay_s = 0.1
    writer = start(writers, TraceWriter(sink, batch_size=2, flush_interval_s=10))
    for i in range(4):
        writer.enqueue(record(i, None))
    assert writer.flush(timeout_s=5)
    assert len(sink.records) == 4


def test_flush_gives_up_after_its_timeout(sink: BatchSink, writers: list[TraceWriter]) -> None:
    sink.gate.clear()
    writer = start(writers, TraceWriter(sink, flush_interval_s=10))
    writer.enqueue(record(1, None))
    started = time.monotonic()
    assert not writer.flush(timeout_s=0.1)
    assert time.monotonic() - started < 1.0
    sink.gate.set()
    assert writer.flush(timeout_s=5)
    assert len(sink.records) == 1


def test_flush_with_nothing_queued(sink: BatchSink, writers: list[TraceWriter]) -> None:
    writer = start(writers, TraceWriter(sink))
    assert writer.flush(timeout_s=1)


def test_full_queue_drops_and_counts(sink: BatchSink, writers: list[TraceWriter]) -> None:
    writer = TraceWriter(sink, max_queue=2)
    writers.append(writer)
    assert [writer.enqueue(record(i, None)) for i in range(5)] == [True, True, False, False, False]
    assert (writer.stats.enqueued, writer.stats.dropped) == (2, 3)


def test_enqueue_never_blocks_on_a_stuck_sink(sink: BatchSink, writers: list[TraceWriter]) -> None:
    sink.gate.clear()
    writer = start(writers, TraceWriter(sink, max_queue=10, batch_size=5, flush_interval_s=0.01))
    started = time.monotonic()
    accepted = sum(writer.enqueue(record(i, None)) for i in range(1000))
    assert time.monotonic() - started < 0.5
    assert accepted == writer.stats.enqueued <= 10 + 5
    assert writer.stats.dropped == 1000 - accepted


def test_failed_writes_are_retried(
    sink: BatchSink, writers: list[TraceWriter], caplog: pytest.LogCaptureFixture
) -> None:
    sink.fail_next = 2
    writer = start(writers, TraceWriter(sink, flush_interval_s=0.01, max_backoff_s=0.05))
    records = [record(i, None) for i in range(3)]
    with caplog.at_level(logging.WARNING, logger="controltower.tracing"):
        for r in records:
            writer.enqueue(r)
        assert writer.flush(timeout_s=5)
    assert sink.records == records
    assert (writer.stats.written, writer.stats.failed_writes, writer.stats.dropped) == (3, 2, 0)
    assert sum("retrying" in r.getMessage() for r in caplog.records) == 2


def test_shutdown_flushes_and_stops(sink: BatchSink) -> None:
    writer = TraceWriter(sink, flush_interval_s=10)
    writer.start()
    for i in range(5):
        writer.enqueue(record(i, None))
    writer.shutdown(timeout_s=5)
    assert len(sink.records) == 5
    assert writer.stats.dropped == 0
    thread = writer._thread
    assert thread is not None and not thread.is_alive()


def test_shutdown_counts_what_could_not_be_written_as_dropped(
    sink: BatchSink, caplog: pytest.LogCaptureFixture
) -> None:
    sink.fail_next = 1_000_000
    writer = TraceWriter(sink, batch_size=2, flush_interval_s=0.01, max_backoff_s=0.02)
    writer.start()
    for i in range(5):
        writer.enqueue(record(i, None))
    with caplog.at_level(logging.WARNING, logger="controltower.tracing"):
        writer.shutdown(timeout_s=0.2)
    assert sink.records == []
    assert writer.stats.written == 0
    assert writer.stats.dropped == 5
    assert writer.stats.failed_writes >= 1


def test_shutdown_of_a_writer_never_started(sink: BatchSink) -> None:
    writer = TraceWriter(sink)
    writer.enqueue(record(1, None))
    writer.shutdown(timeout_s=0.1)
    assert writer.stats.dropped == 1
    assert sink.records == []


def test_enrich_runs_then_totals_roll_up(sink: BatchSink, writers: list[TraceWriter]) -> None:
    seen: list[str] = []

    def enrich(rec: TraceRecord) -> None:
        seen.append(rec.trace.id)
        for span in rec.spans:
            if span.cost is None:
                span.cost = 0.25

    writer = start(writers, TraceWriter(sink, flush_interval_s=0.01, enrich=enrich))
    rec = record(1, None, 1.0, None)
    writer.enqueue(rec)
    assert writer.flush(timeout_s=5)

    assert seen == [rec.trace.id]
    assert sink.records == [rec]
    assert rec.trace.cost == pytest.approx(1.5)
    assert (rec.trace.usage.input_tokens, rec.trace.usage.output_tokens) == (30, 6)


def test_a_failing_enrich_hook_still_writes_the_trace(
    sink: BatchSink, writers: list[TraceWriter], caplog: pytest.LogCaptureFixture
) -> None:
    def enrich(rec: TraceRecord) -> None:
        raise ValueError("price table exploded")

    writer = start(writers, TraceWriter(sink, flush_interval_s=0.01, enrich=enrich))
    with caplog.at_level(logging.ERROR, logger="controltower.tracing"):
        writer.enqueue(record(1, 2.0))
        assert writer.flush(timeout_s=5)
    assert len(sink.records) == 1
    assert any("enriching trace" in r.getMessage() for r in caplog.records)
