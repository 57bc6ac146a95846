"""The runner scores each answer with every scorer: checks in line, waiting ones at once."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from controltower.domain.dataset import DatasetItem
from controltower.domain.evaluation import EvalResult, Verdict
from controltower.evals.calls import CachedClient
from controltower.evals.custom import Negation
from controltower.evals.runner import ItemRunner
from controltower.evals.scoring import Sample
from controltower.evals.targets import Answer
from controltower.store.memory_evals import InMemoryEvalStore


class Slow:
    """A scorer that waits (as a judge does), recording when it ran."""

    kind = "binary"

    def __init__(self, name: str, runs: list[tuple[str, float, float]]) -> None:
        self.name, self.runs = name, runs

    async def score(self, sample: Sample) -> Verdict:
        start = time.perf_counter()
        await asyncio.sleep(0.05)
        self.runs.append((self.name, start, time.perf_counter()))
        return Verdict.of_bool(True)


class Quick:
    """A check that never waits."""

    kind = "binary"
    waits = False

    def __init__(self, name: str) -> None:
        self.name = name

    async def score(self, sample: Sample) -> Verdict:
        return Verdict.of_bool("30 days" in sample.text)


class Fixed:
    async def answer(self, item: DatasetItem, repeat: int) -> Answer:
        return Answer("30 days", "30 days")


def _run(scorers: list[Any]) -> list[EvalResult]:
    written: list[EvalResult] = []
    client = CachedClient(None, InMemoryEvalStore(), "off", "t")  # type: ignore[arg-type]
    runner = ItemRunner(
        "run", Fixed(), scorers, client, concurrency=4, write=lambda r, _c: written.extend(r)
    )
    asyncio.run(runner.run([(DatasetItem("q1", input="refund?"), 0)]))
    return written


def test_scores_keep_the_order_of_the_eval_file_and_waiting_scorers_overlap() -> None:
    runs: list[tuple[str, float, float]] = []
    scorers = [Slow("judge-a", runs), Quick("contains"), Slow("judge-b", runs), Quick("exact")]
    (result,) = _run(scorers)
    assert list(result.scores) == ["judge-a", "contains", "judge-b", "exact"]
    assert all(v.passed for v in result.scores.values())
    (_, a_start, a_end), (_, b_start, b_end) = sorted(runs)
    assert a_start < b_end and b_start < a_end  # the two judges ran at the same time


def test_a_negated_scorer_waits_when_what_it_negates_does() -> None:
    runs: list[tuple[str, float, float]] = []
    assert Negation("not-judge", Slow("judge", runs)).waits is True
    assert Negation("not-contains", Quick("contains")).waits is False
    (result,) = _run([Negation("not-judge", Slow("judge", runs)), Quick("contains")])
    assert result.scores["not-judge"].passed is False and result.scores["contains"].passed
