"""A pairwise judge compares each answer with the baseline run's answer to the same item."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import orjson
import pytest

from controltower.errors import NotFound
from controltower.evals.judge_prompts import DATA_TAG
from controltower.evals.scoring import ModelReply
from controltower.evals.session import EvalRuntime, RunOptions, run_spec
from controltower.evals.spec import parse_eval
from controltower.store.memory_evals import InMemoryEvalStore

ITEMS = [{"id": f"q{i}", "input": f"refund question {i}"} for i in range(3)]


class LongerWins:
    """A judge that prefers the longer answer, and remembers the pairs it saw."""

    def __init__(self) -> None:
        self.pairs: list[tuple[str, str]] = []

    async def chat(self, body: dict[str, Any], **_: Any) -> ModelReply:
        user = body["messages"][-1]["content"]
        pattern = rf'<{DATA_TAG} name="(answer_[ab])">\n(.*?)\n</{DATA_TAG}>'
        found = dict(re.findall(pattern, user, re.DOTALL))
        a, b = found["answer_a"], found["answer_b"]
        self.pairs.append((a, b))
        label = "A" if len(a) > len(b) else "B"
        content = orjson.dumps({"reasoning": "longer", "verdict": label}).decode()
        return ModelReply({"choices": [{"message": {"role": "assistant", "content": content}}]})

    async def embed(self, model: str, texts: list[str]) -> list[list[float]]:
        return [[1.0] for _ in texts]

    async def resolve(self, model: str) -> dict[str, Any]:
        return {"alias": model}


def _spec(target: str, scorers: list[Any]) -> Any:
    return parse_eval(
        {
            "name": "refund",
            "dataset": ITEMS,
            "target": {"python": f"tests.evals.pairwise_app:{target}"},
            "scorers": scorers,
        }
    )


def test_the_judge_sees_the_baseline_runs_answer_and_the_record_names_that_run() -> None:
    judge, store = LongerWins(), InMemoryEvalStore()
    runtime = EvalRuntime(judge, store)
    first = asyncio.run(run_spec(_spec("terse", [{"contains": "30 days"}]), runtime))[0]
    pairwise = {"pairwise": {"model": "judge", "baseline": "last"}}
    second = asyncio.run(run_spec(_spec("helpful", [pairwise]), runtime))[0]
    assert [r.scores["pairwise"].value for r in second.results] == [1.0, 1.0, 1.0]
    assert {r.scores["pairwise"].details["outcome"] for r in second.results} == {"win"}
    assert ("30 days.", second.results[0].text) in judge.pairs  # both orders were asked
    assert second.run.record["scorers"][0]["baseline_run"] == first.run.id


def test_the_runs_baseline_serves_a_pairwise_judge_that_names_none() -> None:
    judge, store = LongerWins(), InMemoryEvalStore()
    runtime = EvalRuntime(judge, store)
    first = asyncio.run(run_spec(_spec("helpful", [{"contains": "30 days"}]), runtime))[0]
    options = RunOptions(baseline=first.run.id)
    spec = _spec("terse", [{"pairwise": {"model": "judge"}}])
    second = asyncio.run(run_spec(spec, runtime, options))[0]
    assert {r.scores["pairwise"].details["outcome"] for r in second.results} == {"loss"}


def test_a_pairwise_judge_without_a_baseline_is_refused_before_any_call() -> None:
    judge = LongerWins()
    runtime = EvalRuntime(judge, InMemoryEvalStore())
    with pytest.raises(NotFound, match="set baseline:"):
        asyncio.run(run_spec(_spec("terse", [{"pairwise": {"model": "judge"}}]), runtime))
    assert judge.pairs == []


def test_a_bad_baseline_setting_names_the_fix() -> None:
    with pytest.raises(Exception, match="run id"):
        _spec("terse", [{"pairwise": {"model": "judge", "baseline": "yesterday"}}])
