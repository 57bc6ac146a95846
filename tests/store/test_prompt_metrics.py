"""Per-version prompt metrics over each trace store: the same numbers from all three."""

from __future__ import annotations

from typing import Any

import pytest

from controltower.domain import Score, Span, Trace, TraceRecord, Usage
from controltower.prompts.metrics import MetricsWindow, VersionMetrics
from controltower.store import InMemoryStore, SqlTraceStore
from controltower.store.prompt_metrics import nearest_rank
from tests.store.records import T0

TraceStore = InMemoryStore | SqlTraceStore


def served(
    n: int,
    version: int | None,
    latency_us: int,
    *,
    prompt: str = "refund",
    status: str = "ok",
    kind: str = "generation",
    cost: float | None = 0.5,
) -> TraceRecord:
    """A trace whose one span served a prompt version."""
    trace_id = f"{n:032x}"
    start = T0 + n * 1_000_000
    span = Span(
        id=f"{n:016x}",
        trace_id=trace_id,
        name="chat",
        kind=kind,  # type: ignore[arg-type]
        start_us=start,
        end_us=start + latency_us,
        usage=Usage(input_tokens=10, output_tokens=4),
        cost=cost,
        status=status,  # type: ignore[arg-type]
        prompt_name=prompt,
        prompt_version=version,
    )
    record = TraceRecord(
        trace=Trace(id=trace_id, name="t", start_us=start, end_us=start + latency_us),
        spans=[span],
    )
    record.roll_up()
    return record


def thumb(n: int, value: Any, *, name: str = "thumbs", source: str = "user") -> Score:
    return Score(
        id=f"score-{name}-{n}-{source}",
        trace_id=f"{n:032x}",
        name=name,
        value=value,
        created_us=T0 + n,
        source=source,  # type: ignore[arg-type]
    )


def metrics(store: TraceStore, name: str, window: MetricsWindow | None = None) -> Any:
    return store.prompt_metrics(name, window)


@pytest.fixture
def filled(store: TraceStore) -> TraceStore:
    # version 1: latencies 1..10 ms, one error; version 2: 4 requests, no cost on one
    records = [served(i, 1, (i + 1) * 1_000, status="error" if i == 3 else "ok") for i in range(10)]
    records += [served(10 + i, 2, 500 * (i + 1), cost=None if i == 0 else 0.25) for i in range(4)]
    records += [
        served(20, 1, 99_000, prompt="other"),  # another prompt
        served(21, 1, 99_000, kind="span"),  # not a generation
        served(22, None, 99_000),  # no version
    ]
    store.write(records)
    store.write_scores(
        [
            thumb(0, True),
            thumb(1, False),
            thumb(2, 1.0),  # a number and a boolean under one name: both count
            thumb(0, 4, name="stars"),
            thumb(10, 5, name="stars"),
            thumb(11, 3, name="stars"),
            thumb(0, "great", name="label"),  # categorical: no mean
            thumb(1, 0.0, source="judge"),  # not a user's
        ]
    )
    return store


def test_each_version_gets_its_requests_latency_tokens_cost_and_errors(
    filled: TraceStore,
) -> None:
    found = metrics(filled, "refund")
    assert sorted(found) == [1, 2]
    one, two = found[1], found[2]
    assert (one.requests, one.errors, one.error_rate) == (10, 1, 0.1)
    assert (one.latency_p50_us, one.latency_p95_us) == (5_000, 10_000)
    assert (one.input_tokens, one.output_tokens) == (100, 40)
    assert one.cost == pytest.approx(5.0)
    assert (two.requests, two.errors, two.error_rate) == (4, 0, 0.0)
    assert (two.latency_p50_us, two.latency_p95_us) == (1_000, 2_000)
    assert two.cost == pytest.approx(0.75)


def test_user_scores_are_averaged_per_version_and_name(filled: TraceStore) -> None:
    found = metrics(filled, "refund")
    one, two = found[1].user_scores, found[2].user_scores
    assert set(one) == {"thumbs", "stars"}
    assert one["thumbs"].mean == pytest.approx(2 / 3)
    assert one["thumbs"].count == 3
    assert (one["stars"].mean, one["stars"].count) == (4.0, 1)
    assert (two["stars"].mean, two["stars"].count) == (4.0, 2)


def test_the_window_bounds_the_spans_start(filled: TraceStore) -> None:
    window = MetricsWindow(since_us=T0 + 5 * 1_000_000, until_us=T0 + 12 * 1_000_000)
    found = metrics(filled, "refund", window)
    assert {v: m.requests for v, m in found.items()} == {1: 5, 2: 2}


def test_an_unserved_prompt_has_no_rows(filled: TraceStore) -> None:
    assert metrics(filled, "nobody") == {}
    assert metrics(filled, "other")[1] == VersionMetrics(
        version=1,
        requests=1,
        latency_p50_us=99_000,
        latency_p95_us=99_000,
        input_tokens=10,
        output_tokens=4,
        cost=0.5,
    )


def test_nearest_rank() -> None:
    assert nearest_rank([], 50) is None
    assert nearest_rank([7], 95) == 7
    assert nearest_rank([1, 2, 3, 4], 50) == 2
    assert nearest_rank(list(range(1, 101)), 95) == 95
