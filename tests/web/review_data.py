"""An eval run for the review pages: a dataset, four judged answers (two failed)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from controltower.domain.dataset import DatasetItem
from controltower.domain.evaluation import EvalResult, EvalRun, Verdict
from controltower.store import InMemoryStore

from ..conftest import DEMO, RunningGateway, config, running_gateway
from . import data

RUN_ID = "run_review_demo"
QUESTIONS = {
    "r1": ("Can I get a refund?", "30 days"),
    "r2": ("How long do I have to return shoes?", "30 days"),
    "r3": ("When will my order ship?", "two business days"),
    "r4": ("Do you ship to Canada?", "yes"),
}
ANSWERS = {
    "r1": ("You can get a refund within 30 days of delivery.", 5, True),
    "r2": ("Returns are accepted.", 2, False),
    "r3": ("Orders ship within two business days.", 4, True),
    "r4": ("We do not know.", 1, False),
}
RUBRIC_YAML = """\
criteria:
  - name: correct
    scale: pass-fail
    instructions: Does the answer give the right facts?
  - name: judge
    scale: 1-5
    labels: [wrong, poor, fair, good, perfect]
    instructions: How good is the answer overall?
"""


def seed_run(store: Any) -> EvalRun:
    """Store the dataset and the run (with its results) in an eval store."""
    items = [DatasetItem(i, q, expected=e) for i, (q, e) in QUESTIONS.items()]
    version, _ = store.push_dataset("refund", items)
    record = {
        "dataset": {"name": "refund", "version": version.version, "hash": version.hash},
        "scorers": [
            {"type": "contains", "name": "contains", "config": {"value": "{{ expected }}"}},
            {
                "type": "judge",
                "name": "judge",
                "config": {"rubric": "Is it right?", "scale": "1-5"},
                "judge_model": "judge",
            },
        ],
    }
    run = EvalRun(RUN_ID, "refund", 1_700_000_000_000_000, "fp", "finished", record)
    store.create_run(run)
    results = []
    for n, (item_id, (text, score, ok)) in enumerate(ANSWERS.items(), 1):
        reason = f"The answer {'gives' if ok else 'misses'} the fact (reason {item_id})."
        verdicts = {
            "contains": Verdict.of_bool(ok),
            "judge": Verdict(float(score), None, reason, judge_model="judge-1"),
        }
        trace = data.trace_id(n) if n <= 2 else None
        results.append(
            EvalResult(run.id, item_id, 0, "ok", text, text, None, trace, 12.0, 0.0, verdicts)
        )
    store.write_results(results)
    return run


@contextmanager
def serving() -> Iterator[RunningGateway]:
    """A gateway whose store holds the seeded traces and the judged run."""
    store = InMemoryStore()
    data.seed(store)
    seed_run(store.eval_store())
    with running_gateway(config(DEMO), store) as gw:
        yield gw
