"""The SDK's JSON events → partial trace records, scores and errors by index."""

from __future__ import annotations

from typing import Any

import pytest

from controltower.ingest import records_from_events

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
ROOT = "00f067aa0ba902b7"
CHILD = "b7ad6b7169203331"


def span(**body: Any) -> dict[str, Any]:
    base = {"id": ROOT, "trace_id": TRACE, "name": "answer", "start_us": 1_000}
    return {"type": "span", "body": {**base, **body}}


def child(**body: Any) -> dict[str, Any]:
    return span(id=CHILD, parent_id=ROOT, name="llm", **body)


def test_spans_of_one_trace_make_one_record_with_the_root_on_the_trace() -> None:
    generation = child(
        kind="generation",
        start_us=1_100,
        end_us=1_900,
        input=[{"role": "user", "content": "hi"}],
        output={"role": "assistant", "content": "hello"},
        model="gpt-4o-mini",
        provider="openai",
        parameters={"temperature": 0},
        usage={"input_tokens": 10, "output_tokens": 2, "cached_tokens": 4},
        ttft_us=300,
        prompt_name="greet",
        prompt_version=3,
        attributes={"step": 1},
    )
    root = span(end_us=2_000, input="hi", output="hello", status="ok")
    result = records_from_events([generation, root])
    assert (result.accepted, result.errors, result.scores) == (2, [], [])
    [record] = result.records
    assert record.partial
    trace = record.trace
    assert (trace.id, trace.name, trace.input, trace.output) == (TRACE, "answer", "hi", "hello")
    assert (trace.start_us, trace.end_us, trace.status) == (1_000, 2_000, "ok")
    llm = record.spans[0]
    assert (llm.kind, llm.parent_id, llm.model, llm.provider) == (
        "generation",
        ROOT,
        "gpt-4o-mini",
        "openai",
    )
    assert (llm.usage.input_tokens, llm.usage.output_tokens, llm.usage.cached_tokens) == (10, 2, 4)
    assert (llm.ttft_us, llm.prompt_name, llm.prompt_version) == (300, "greet", 3)
    assert (llm.parameters, llm.attributes, llm.cost) == ({"temperature": 0}, {"step": 1}, None)
    assert llm.input == [{"role": "user", "content": "hi"}]


def test_defaults() -> None:
    [record] = records_from_events([span()]).records
    only = record.spans[0]
    assert (only.kind, only.status, only.end_us, only.parent_id) == ("span", "ok", None, None)
    [failed] = records_from_events([span(error="boom")]).records
    assert (failed.spans[0].status, failed.trace.status) == ("error", "error")


def test_a_piece_without_its_root_leaves_trace_fields_empty() -> None:
    [record] = records_from_events([child(start_us=1_500)]).records
    assert (record.trace.name, record.trace.input, record.trace.start_us) == ("", None, 1_500)


def test_trace_updates_overwrite_what_the_root_said() -> None:
    update = {
        "type": "trace",
        "body": {
            "id": TRACE,
            "name": "renamed",
            "user_id": "u-1",
            "session_id": "s-1",
            "tags": ["a", "b"],
            "metadata": {"k": 1},
            "output": "final",
            "environment": "prod",
            "release": "1.0",
        },
    }
    more = {"type": "trace", "body": {"id": TRACE, "tags": ["b", "c"], "metadata": {"j": 2}}}
    [record] = records_from_events([span(output="draft"), update, more]).records
    trace = record.trace
    assert (trace.name, trace.output, trace.input) == ("renamed", "final", None)
    assert (trace.user_id, trace.session_id) == ("u-1", "s-1")
    assert (trace.tags, trace.metadata) == (["a", "b", "c"], {"k": 1, "j": 2})
    assert (trace.environment, trace.release) == ("prod", "1.0")


def test_an_update_alone_is_a_record_without_spans() -> None:
    update = {"type": "trace", "body": {"id": TRACE, "user_id": "u-1", "start_us": 5}}
    [record] = records_from_events([update]).records
    assert (record.spans, record.partial) == ([], True)
    assert (record.trace.user_id, record.trace.start_us, record.trace.name) == ("u-1", 5, "")


def test_an_update_beside_spans_without_the_root_travels_on_its_own() -> None:
    update = {"type": "trace", "body": {"id": TRACE, "name": "explicit"}}
    records = records_from_events([child(), update]).records
    assert [(len(r.spans), r.trace.name) for r in records] == [(1, ""), (0, "explicit")]


def test_scores() -> None:
    events = [
        {"type": "score", "body": {"trace_id": TRACE, "name": "thumbs", "value": True}},
        {
            "type": "score",
            "body": {
                "id": "score-1",
                "trace_id": TRACE,
                "span_id": CHILD,
                "name": "accuracy",
                "value": 1,
                "source": "judge",
                "comment": "fine",
                "author": "gpt-4o",
            },
        },
        {"type": "score", "body": {"trace_id": TRACE, "name": "topic", "value": "billing"}},
    ]
    result = records_from_events(events)
    assert result.records == [] and result.errors == []
    thumbs, accuracy, topic = result.scores
    assert (thumbs.value, thumbs.data_type, thumbs.source) == (True, "boolean", "api")
    assert len(thumbs.id) == 32 and thumbs.created_us > 0
    assert (accuracy.id, accuracy.value, accuracy.data_type) == ("score-1", 1.0, "numeric")
    assert (accuracy.span_id, accuracy.source, accuracy.comment, accuracy.author) == (
        CHILD,
        "judge",
        "fine",
        "gpt-4o",
    )
    assert (topic.value, topic.data_type) == ("billing", "categorical")


BAD_EVENTS = [
    ("not an event", "object with `type` and `body`"),
    ({"type": "log", "body": {}}, "`type` must be"),
    ({"type": "span"}, "`body` of a span event"),
    (span(id="xyz"), "`body.id` must be 16 hex digits"),
    (span(id="0" * 16), "`body.id` must be 16 hex digits, not all zero"),
    (span(trace_id=None), "`body.trace_id` is required"),
    (span(parent_id=TRACE), "`body.parent_id` must be 16 hex digits"),
    (span(name=""), "`body.name` is required"),
    (span(start_us=None), "`body.start_us` is required"),
    (span(start_us="1000"), "`body.start_us` is required and must be a whole number"),
    (span(end_us=10), "`body.end_us` (10) is before `body.start_us` (1000)"),
    (span(kind="llm"), "`body.kind` must be one of"),
    (span(status="failed"), "`body.status` must be one of 'ok', 'error'"),
    (span(usage={"input_tokens": -1}), "`body.usage.input_tokens` must be a whole number"),
    (span(usage=[1]), "`body.usage` must be an object"),
    (span(cost="free"), "`body.cost` must be a number from 0 to 1e+09"),
    (span(cost=-0.01), "`body.cost` must be a number from 0 to 1e+09"),
    (span(cost=1.7e308), "`body.cost` must be a number from 0 to 1e+09"),
    (span(cost=float("nan")), "`body.cost` must be a number from 0 to 1e+09"),
    (span(cost=10**400), "`body.cost` must be a number from 0 to 1e+09 or null, got an integer of"),
    (
        span(start_us=2**63),
        "`body.start_us` is required and must be a whole number from 0 to 2^63-1",
    ),
    (
        span(end_us=10**5000),
        "`body.end_us` must be a whole number from 0 to 2^63-1, got an integer",
    ),
    (span(ttft_us=2**64), "`body.ttft_us` must be a whole number from 0 to 2^63-1"),
    (span(prompt_version=2**63), "`body.prompt_version` must be a whole number from 0 to 2^63-1"),
    (span(usage={"output_tokens": 2**63}), "`body.usage.output_tokens` must be a whole number"),
    (
        span(start_us=4_000_000_000_000_000, end_us=None),
        "`body.start_us` (4000000000000000) is more than a day in the future",
    ),
    (span(parameters=[]), "`body.parameters` must be an object"),
    (span(model=4), "`body.model` must be a string"),
    ({"type": "trace", "body": {"name": "x"}}, "`body.id` is required (32 hex digits)"),
    ({"type": "trace", "body": {"id": TRACE, "tags": "a,b"}}, "`body.tags` must be an array"),
    ({"type": "score", "body": {"trace_id": TRACE, "name": "x"}}, "`body.value` is required"),
    ({"type": "score", "body": {"trace_id": TRACE, "value": 1}}, "`body.name` is required"),
    (
        {"type": "score", "body": {"trace_id": TRACE, "name": "x", "value": 1, "source": "me"}},
        "`body.source` must be one of",
    ),
]


@pytest.mark.parametrize(("event", "message"), BAD_EVENTS)
def test_invalid_events_are_reported_by_index_and_the_rest_kept(event: Any, message: str) -> None:
    result = records_from_events([span(), event, child()])
    assert result.accepted == 2
    [(index, text)] = result.errors
    assert index == 1
    assert message in text
    assert [len(r.spans) for r in result.records] == [2]
