"""RAG judges read what the application retrieved: the retrieval spans of its trace."""

from __future__ import annotations

import asyncio
from typing import Any

from controltower.evals.contexts import TraceContexts, retrieved_passages
from controltower.evals.scoring import ModelReply
from controltower.evals.session import EvalRuntime, run_spec
from controltower.evals.spec import parse_eval
from controltower.evals.targets import Answer
from controltower.store import InMemoryStore
from tests.evals import rag_app


def _span(kind: str, start: str, output: Any) -> dict[str, Any]:
    return {"kind": kind, "start_time": start, "output": output}


def test_passages_come_from_retrieval_spans_in_the_order_they_started() -> None:
    trace = {
        "spans": [
            _span("retrieval", "2026-01-01T00:00:02Z", [{"page_content": "third"}]),
            _span("generation", "2026-01-01T00:00:00Z", "not a passage"),
            _span("retrieval", "2026-01-01T00:00:01Z", [{"content": "first"}, "second"]),
            _span("retrieval", "2026-01-01T00:00:03Z", {"documents": [{"text": "fourth"}]}),
            _span("retrieval", "2026-01-01T00:00:04Z", [{"document": {"content": "fifth"}}]),
            _span("retrieval", "2026-01-01T00:00:05Z", [None, {"title": "T", "body": "B"}]),
        ]
    }
    assert retrieved_passages(trace) == (
        "first",
        "second",
        "third",
        "fourth",
        "fifth",
        '{"title":"T","body":"B"}',
    )
    assert retrieved_passages({"spans": []}) == ()


class LateReader:
    """A store where the trace lands after `late` reads, first unfinished."""

    def __init__(self, late: int) -> None:
        self.late, self.reads = late, 0

    def get_trace(self, trace_id: str, span_io: bool = True) -> dict[str, Any] | None:
        self.reads += 1
        if self.reads < self.late:
            return None
        span = _span("retrieval", "t", ["the passage"])
        return {"end_time": "t" if self.reads > self.late else None, "spans": [span]}


def test_a_trace_that_lands_late_is_read_again_until_it_is_finished() -> None:
    reader = LateReader(late=3)
    contexts = TraceContexts(reader, wait_s=5)
    answer = asyncio.run(contexts(Answer("x", "x", trace_id="t1", contexts=("from the item",))))
    assert answer.contexts == ("the passage",) and reader.reads == 4 and contexts.read == 1


def test_a_trace_that_never_lands_keeps_the_items_contexts_and_is_counted() -> None:
    contexts = TraceContexts(LateReader(late=10**6), wait_s=0.2)
    answer = asyncio.run(contexts(Answer("x", "x", trace_id="t1", contexts=("from the item",))))
    assert answer.contexts == ("from the item",) and contexts.missing == 1


class Judge:
    """The judge model: records what it was asked, and finds every claim supported."""

    def __init__(self) -> None:
        self.prompts: list[str] = []

    async def chat(self, body: dict[str, Any], **_: Any) -> ModelReply:
        self.prompts.append("\n".join(str(m.get("content")) for m in body["messages"]))
        reply = '{"reasoning": "all there", "claims": [{"claim": "c", "supported": true}]}'
        return ModelReply({"choices": [{"message": {"role": "assistant", "content": reply}}]})

    async def embed(self, model: str, texts: list[str]) -> list[list[float]]:
        return [[1.0] for _ in texts]

    async def resolve(self, model: str) -> dict[str, Any]:
        return {"alias": model}


def test_a_faithfulness_judge_grades_against_what_the_app_retrieved() -> None:
    store = InMemoryStore()
    rag_app.STORE = store
    judge = Judge()
    spec = parse_eval(
        {
            "name": "rag",
            "dataset": [
                {"id": "r1", "input": "what is the refund window?"},
                {"id": "s1", "input": "when do orders ship?"},
            ],
            "target": {"python": "tests.evals.rag_app:answer"},
            "scorers": [{"faithfulness": {"model": "judge"}}, {"contains": "days"}],
        }
    )
    runtime = EvalRuntime(judge, store.eval_store(), traces=store)
    outcome = asyncio.run(run_spec(spec, runtime))[0]
    assert outcome.run.summary["contexts"] == {"from_traces": 2, "traces_missing": 0}
    assert {r.scores["faithfulness"].value for r in outcome.results} == {1.0}
    refund = next(p for p in judge.prompts if "refund window" in p)
    assert "Opened items get store credit." in refund  # the second passage, from the span
    shipping = next(p for p in judge.prompts if "orders ship" in p)
    assert "Orders ship within two working days." in shipping
    assert "store credit" not in shipping


JUDGE_CONFIG = """
master_key: rag-remote-key
models:
  - name: judge
    deployments:
      - provider: mock
        model: judge-1
        mock: {reply: '{"reasoning": "all there", "claims": [{"claim": "c", "supported": true}]}'}
"""


def test_over_a_remote_gateway_the_spans_are_read_from_its_query_api() -> None:
    from controltower.gateway.remote import remote_runtime
    from tests.conftest import config, running_gateway

    store = InMemoryStore()  # the gateway's store, where the application's traces land
    rag_app.STORE = store
    spec = parse_eval(
        {
            "name": "rag-remote",
            "dataset": [{"id": "r1", "input": "what is the refund window?"}],
            "target": {"python": "tests.evals.rag_app:answer"},
            "scorers": [{"faithfulness": {"model": "judge"}}],
        }
    )
    runs = InMemoryStore().eval_store()  # the eval's own store, apart from the gateway's

    async def run(url: str) -> tuple[Any, Any]:
        runtime = remote_runtime(url, "rag-remote-key", runs)
        try:
            outcome = (await run_spec(spec, runtime))[0]
            return outcome, await runtime.traces.fetch_trace("0" * 32)  # type: ignore[union-attr]
        finally:
            await runtime.aclose()

    with running_gateway(config(JUDGE_CONFIG), store) as gw:
        outcome, missing = asyncio.run(run(gw.url))
    assert outcome.run.summary["contexts"] == {"from_traces": 1, "traces_missing": 0}
    assert outcome.results[0].scores["faithfulness"].value == 1.0
    judged = store.get_trace(outcome.results[0].scores["faithfulness"].details["judge_trace_id"])
    assert judged is not None and "Opened items get store credit." in str(judged["input"])
    assert missing is None
