"""No record holds back another: bad records are split out and set aside, outages retried,
and the normaliser makes NUL, deep nesting, huge numbers and payloads storable."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator

import orjson
import pytest

from controltower.domain import Span, Trace, TraceRecord, Usage
from controltower.tracing import InMemorySink, TraceWriter
from controltower.tracing.normalize import (
    MAX_DEPTH,
    MAX_PAYLOAD_BYTES,
    PREVIEW_KEY,
    TRUNCATED_KEY,
    dead_letter_payload,
    normalize_record,
)


def record(n: int, **trace: object) -> TraceRecord:
    trace_id = f"{n:032x}"
    span = Span(id=f"{n:016x}", trace_id=trace_id, name="chat", kind="generation", start_us=1)
    return TraceRecord(Trace(id=trace_id, name="chat", start_us=1, **trace), [span])  # type: ignore[arg-type]


@pytest.fixture
def writer() -> Iterator[tuple[TraceWriter, InMemorySink]]:
    sink = InMemorySink()
    made = TraceWriter(sink, batch_size=64, flush_interval_s=0.01, max_backoff_s=0.02)
    made.start()
    yield made, sink
    made.shutdown(timeout_s=5)


def test_one_refused_record_is_set_aside_and_the_rest_written(
    writer: tuple[TraceWriter, InMemorySink], caplog: pytest.LogCaptureFixture
) -> None:
    w, sink = writer
    records = [record(i) for i in range(40)]
    sink.refuse = {records[7].trace.id, records[31].trace.id}
    with caplog.at_level(logging.ERROR, logger="controltower.tracing"):
        for r in records:
            w.enqueue(r)
        assert w.flush(timeout_s=10)
        later = record(99)
        w.enqueue(later)
        assert w.flush(timeout_s=10)
    written = {r.trace.id for r in sink.records}
    assert written == {r.trace.id for r in [*records, later]} - sink.refuse
    assert {letter.trace_id for letter in sink.letters} == sink.refuse
    assert all("ValueError: in-memory sink refuses" in letter.error for letter in sink.letters)
    assert orjson.loads(sink.letters[0].payload)["trace"]["id"] in sink.refuse
    assert (w.stats.written, w.stats.dead_lettered, w.stats.dropped) == (39, 2, 0)
    assert "cannot be stored" in caplog.text and "setting it aside" in caplog.text


def test_an_outage_is_retried_whole_and_sets_nothing_aside(
    writer: tuple[TraceWriter, InMemorySink],
) -> None:
    w, sink = writer
    sink.fail_next = 12  # longer than the "unavailable" answers believed without a ping
    records = [record(i) for i in range(5)]
    for r in records:
        w.enqueue(r)
    assert w.flush(timeout_s=10)
    assert sink.records == records
    assert sink.letters == [] and w.stats.dead_lettered == 0
    assert w.stats.failed_writes == 12


def test_a_sink_without_dead_letters_logs_and_counts_the_loss(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Plain:
        def __init__(self) -> None:
            self.records: list[TraceRecord] = []

        def write(self, records: list[TraceRecord]) -> None:
            if any(r.trace.name == "bad" for r in records):
                raise ValueError("refused")
            self.records.extend(records)

    sink = Plain()
    w = TraceWriter(sink, flush_interval_s=0.01)
    w.start()
    bad = record(1)
    bad.trace.name = "bad"
    with caplog.at_level(logging.ERROR, logger="controltower.tracing"):
        w.enqueue(bad)
        w.enqueue(record(2))
        assert w.flush(timeout_s=5)
    w.shutdown(timeout_s=5)
    assert [r.trace.id for r in sink.records] == [record(2).trace.id]
    assert (w.stats.dropped, w.stats.dead_lettered) == (1, 0)
    assert "could not be set aside either" in caplog.text and f"{1:032x}" in caplog.text


# -- the normaliser ----------------------------------------------------------------------------


def nested(depth: int) -> dict[str, object]:
    top: dict[str, object] = {}
    level = top
    for _ in range(depth):
        level["a"] = {}
        level = level["a"]  # type: ignore[assignment]
    return top


def depth_of(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    return 0


def test_nul_and_lone_surrogates_become_replacement_characters() -> None:
    r = record(1, user_id="a\x00b", session_id="s\udc80", metadata={"k\x00": ["v\x00"]})
    r.spans[0].input = [{"role": "user", "content": "hi\x00there"}]
    r.spans[0].error = "bad \ud800"
    assert normalize_record(r)
    assert r.trace.user_id == "a\ufffdb" and r.trace.session_id == "s\ufffd"
    assert r.trace.metadata == {"k\ufffd": ["v\ufffd"]}
    assert r.spans[0].input == [{"role": "user", "content": "hi\ufffdthere"}]
    assert r.spans[0].error == "bad \ufffd"


def test_deep_nesting_is_cut_and_huge_numbers_fit() -> None:
    r = record(1, metadata=nested(400))
    r.spans[0].attributes = {"n": 2**70, "m": -(2**200), "f": math.inf}
    r.spans[0].ttft_us = 2**64
    r.spans[0].prompt_version = 10**30
    r.spans[0].usage = Usage(input_tokens=2**63, output_tokens=-3, cached_tokens=5)
    assert normalize_record(r)
    assert depth_of(r.trace.metadata) <= MAX_DEPTH + 1
    orjson.dumps(r.trace.metadata)  # storable now
    assert r.spans[0].attributes == {"n": float(2**70), "m": float(-(2**200)), "f": None}
    assert r.spans[0].ttft_us == 2**63 - 1 and r.spans[0].prompt_version == 2**63 - 1
    assert r.spans[0].usage == Usage(input_tokens=None, output_tokens=None, cached_tokens=5)


@pytest.mark.parametrize("cost", [math.nan, math.inf, -0.5])
def test_costs_that_are_not_finite_and_non_negative_are_dropped(cost: float) -> None:
    r = record(1, cost=cost)
    r.spans[0].cost = cost
    assert normalize_record(r)
    assert r.trace.cost is None and r.spans[0].cost is None


def test_a_payload_over_the_cap_becomes_a_marked_preview() -> None:
    r = record(1, metadata={"big": "x" * (MAX_PAYLOAD_BYTES + 10)})
    r.spans[0].output = "y" * (MAX_PAYLOAD_BYTES + 10)
    assert normalize_record(r)
    assert set(r.trace.metadata) == {PREVIEW_KEY, TRUNCATED_KEY}
    assert r.trace.metadata[TRUNCATED_KEY] == ["metadata"]
    assert r.spans[0].attributes[TRUNCATED_KEY] == ["output"]
    assert len(r.spans[0].output) < 20_000 and "bytes, cut to" in r.spans[0].output


def test_a_well_formed_record_is_left_as_it_is() -> None:
    r = record(1, user_id="ann", metadata={"plan": "pro", "n": 3}, tags=["a"], cost=0.25)
    r.spans[0].input = [{"role": "user", "content": "héllo"}]
    before = orjson.dumps([r.trace.metadata, r.spans[0].input])
    assert not normalize_record(r)
    assert orjson.dumps([r.trace.metadata, r.spans[0].input]) == before
    assert r.trace.cost == 0.25


def test_the_dead_letter_payload_is_ascii_whatever_the_record_holds() -> None:
    r = record(1, user_id="a\x00\udc80", metadata=nested(5000))
    text = dead_letter_payload(r)
    assert text.isascii() and "\x00" not in text
    assert f"{1:032x}" in text


def test_every_stored_field_is_normalised() -> None:
    from dataclasses import fields

    from controltower.tracing.normalize import _LAYOUTS

    for cls, layout in _LAYOUTS.items():
        covered = {*layout.text, *layout.ints, *layout.json, *layout.costs, *layout.usage}
        # price_override is a local deployment's prices: the store never writes it
        assert {f.name for f in fields(cls)} - covered <= {"price_override"}, cls


def test_metadata_and_tags_are_held_to_what_a_list_can_show() -> None:
    from controltower.tracing.normalize import MAX_METADATA_BYTES, MAX_TAG_CHARS, MAX_TAGS

    r = record(1, metadata={"blob": "m" * MAX_METADATA_BYTES}, tags=[f"t{i}" for i in range(500)])
    r.trace.tags.append("x" * 1000)
    assert normalize_record(r)
    assert len(r.trace.tags) == MAX_TAGS and r.trace.tags[:2] == ["t0", "t1"]
    assert set(r.trace.metadata) == {PREVIEW_KEY, TRUNCATED_KEY}
    assert r.trace.metadata[TRUNCATED_KEY] == ["tags", "metadata"]
    assert len(orjson.dumps(r.trace.metadata)) < MAX_METADATA_BYTES
    long_tag = record(2, tags=["y" * 1000])
    assert normalize_record(long_tag) and len(long_tag.trace.tags[0]) == MAX_TAG_CHARS


def test_nesting_within_the_json_encoders_limit_is_cut_too() -> None:
    r = record(1, metadata=nested(100))
    r.spans[0].input = [nested(80)]
    r.spans[0].output = {"text": "[[[[" * 100}  # brackets inside a string are not nesting
    before = r.spans[0].output
    assert normalize_record(r)
    assert depth_of(r.trace.metadata) <= MAX_DEPTH + 1
    assert r.spans[0].output == before


def test_token_counts_past_any_model_are_dropped() -> None:
    from controltower.domain.trace import MAX_TOKENS

    r = record(1)
    r.spans[0].usage = Usage(input_tokens=MAX_TOKENS + 1, output_tokens=MAX_TOKENS)
    assert normalize_record(r)
    assert r.spans[0].usage == Usage(input_tokens=None, output_tokens=MAX_TOKENS)
