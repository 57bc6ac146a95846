"""The SDK against a real server: nesting, sync/async/generators, errors, traces, scores."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import controltower as ct
from tests.conftest import RunningGateway

from .conftest import spans_by_name, stored


def test_nested_functions_and_blocks_form_one_trace(gateway: RunningGateway) -> None:
    @ct.observe()
    def rerank(docs: list[str], top: int = 1) -> list[str]:
        return docs[:top]

    @ct.observe(name="answer-question")
    def answer(question: str) -> dict[str, Any]:
        with ct.span("retrieve", kind="retrieval", input={"q": question}) as s:
            s.update(output=["a", "b"], metadata={"index": "docs"})
        best = rerank(["a", "b"], top=1)
        return {"answer": best[0], "trace": ct.get_current_trace_id()}

    result = answer("why?")
    trace = stored(gateway, result["trace"])
    spans = spans_by_name(trace)
    root = spans["answer-question"]
    assert root["parent_id"] is None
    assert spans["retrieve"]["parent_id"] == root["id"]
    assert spans["retrieve"]["kind"] == "retrieval"
    assert spans["retrieve"]["input"] == {"q": "why?"}
    assert spans["retrieve"]["output"] == ["a", "b"]
    assert spans["retrieve"]["attributes"] == {"index": "docs"}
    assert spans["test_nested_functions_and_blocks_form_one_trace.<locals>.rerank"]["input"] == {
        "docs": ["a", "b"],
        "top": 1,
    }
    assert trace["name"] == "answer-question"
    assert trace["input"] == {"question": "why?"}
    assert trace["output"] == result
    assert trace["status"] == "ok"
    assert all(span["end_time"] for span in trace["spans"])


async def test_async_functions_nest_across_tasks(gateway: RunningGateway) -> None:
    @ct.observe(name="leaf")
    async def leaf(n: int) -> int:
        await asyncio.sleep(0)
        return n * 2

    @ct.observe(name="fan-out")
    async def fan_out() -> tuple[list[int], str | None]:
        results = await asyncio.gather(leaf(1), leaf(2), asyncio.create_task(leaf(3)))
        return list(results), ct.get_current_trace_id()

    results, trace_id = await fan_out()
    assert results == [2, 4, 6]
    trace = await asyncio.to_thread(stored, gateway, trace_id)
    root = next(s for s in trace["spans"] if s["name"] == "fan-out")
    leaves = [s for s in trace["spans"] if s["name"] == "leaf"]
    assert sorted(s["output"] for s in leaves) == [2, 4, 6]
    assert {s["parent_id"] for s in leaves} == {root["id"]}


def test_generator_span_covers_the_iteration(gateway: RunningGateway) -> None:
    @ct.observe(name="tokens")
    def tokens(n: int) -> Any:
        for i in range(n):
            with ct.span(f"step-{i}"):
                pass
            yield f"t{i} "

    @ct.observe(name="numbers")
    def numbers() -> Any:
        yield from (1, 2, 3)

    @ct.observe(name="consume")
    def consume() -> str | None:
        own = ct.get_current_span_id()
        assert "".join(tokens(3)) == "t0 t1 t2 "
        for _ in numbers():
            assert ct.get_current_span_id() == own  # the generator's span does not leak
            break  # closes the generator early: its span still ends
        return ct.get_current_trace_id()

    trace = stored(gateway, consume())
    spans = spans_by_name(trace)
    assert spans["tokens"]["output"] == "t0 t1 t2 "
    assert spans["tokens"]["input"] == {"n": 3}
    assert spans["step-1"]["parent_id"] == spans["tokens"]["id"]
    assert spans["numbers"]["output"] == [1]
    assert spans["numbers"]["status"] == "ok"
    assert spans["numbers"]["end_time"] is not None


async def test_async_generator_span_and_send(gateway: RunningGateway) -> None:
    @ct.observe(name="stream")
    async def stream() -> Any:
        for i in range(3):
            with ct.span(f"chunk-{i}"):
                await asyncio.sleep(0)
            yield {"i": i}

    @ct.observe(name="echo")
    async def echo() -> Any:
        received = yield "ready"
        while received is not None:
            received = yield received.upper()

    @ct.observe(name="run")
    async def run() -> str | None:
        assert [item async for item in stream()] == [{"i": 0}, {"i": 1}, {"i": 2}]
        gen = echo()
        assert await gen.asend(None) == "ready"
        assert await gen.asend("a") == "A"
        await gen.aclose()
        return ct.get_current_trace_id()

    trace = await asyncio.to_thread(stored, gateway, await run())
    spans = spans_by_name(trace)
    assert spans["stream"]["output"] == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert spans["chunk-2"]["parent_id"] == spans["stream"]["id"]
    assert spans["echo"]["output"] == "readyA"
    assert spans["run"]["parent_id"] is None


def test_an_exception_marks_the_span_and_is_reraised_untouched(gateway: RunningGateway) -> None:
    boom = ValueError("no such document")
    seen: dict[str, str | None] = {}

    @ct.observe(name="failing")
    def failing() -> None:
        raise boom

    @ct.observe(name="caller")
    def caller() -> None:
        seen["trace"] = ct.get_current_trace_id()
        failing()

    with pytest.raises(ValueError) as raised:
        caller()
    assert raised.value is boom
    trace = stored(gateway, seen["trace"])
    spans = spans_by_name(trace)
    assert spans["failing"]["status"] == "error"
    assert spans["failing"]["error"] == "ValueError: no such document"
    assert spans["caller"]["status"] == "error"
    assert trace["status"] == "error"


async def test_async_generator_exception_marks_its_span(gateway: RunningGateway) -> None:
    seen: dict[str, str | None] = {}

    @ct.observe(name="broken-stream")
    async def broken() -> Any:
        seen["trace"] = ct.get_current_trace_id()
        yield 1
        raise RuntimeError("stream broke")

    with pytest.raises(RuntimeError, match="stream broke"):
        async for _ in broken():
            pass
    trace = await asyncio.to_thread(stored, gateway, seen["trace"])
    span = spans_by_name(trace)["broken-stream"]
    assert span["status"] == "error"
    assert span["error"] == "RuntimeError: stream broke"
    assert span["output"] == [1]


def test_methods_drop_self_and_cls(gateway: RunningGateway) -> None:
    class Retriever:
        def __init__(self) -> None:
            self.prefix = "doc"

        @ct.observe(name="search")
        def search(self, query: str) -> str:
            return f"{self.prefix}:{query}"

        @ct.observe(name="build")
        @classmethod
        def build(cls, size: int) -> int:
            return size

        @staticmethod
        @ct.observe(name="normalize")
        def normalize(text: str) -> str:
            return text.lower()

    @ct.observe(name="pipeline")
    def pipeline() -> str | None:
        retriever = Retriever()
        assert retriever.search("Q") == "doc:Q"
        assert Retriever.build(3) == 3
        assert Retriever.normalize("X") == "x"
        return ct.get_current_trace_id()

    spans = spans_by_name(stored(gateway, pipeline()))
    assert spans["search"]["input"] == {"query": "Q"}
    assert spans["build"]["input"] == {"size": 3}
    assert spans["normalize"]["input"] == {"text": "X"}


def test_capture_can_be_turned_off_per_decorator(gateway: RunningGateway) -> None:
    @ct.observe(name="private", capture_input=False, capture_output=False)
    def private(secret: str) -> str:
        return secret[::-1]

    @ct.observe(name="outer")
    def outer() -> str | None:
        private("password")
        return ct.get_current_trace_id()

    span = spans_by_name(stored(gateway, outer()))["private"]
    assert span["input"] is None
    assert span["output"] is None


def test_threads_join_the_trace_through_bind_context(gateway: RunningGateway) -> None:
    @ct.observe(name="work")
    def work(n: int) -> int:
        return n + 1

    @ct.observe(name="dispatch")
    def dispatch() -> tuple[str | None, str | None]:
        with ThreadPoolExecutor(2) as pool:
            assert list(pool.map(ct.bind_context(work), [1, 2])) == [2, 3]
            alone = pool.submit(lambda: work(5)).result()  # no context: a trace of its own
        assert alone == 6
        return ct.get_current_trace_id(), ct.get_current_span_id()

    trace_id, span_id = dispatch()
    trace = stored(gateway, trace_id)
    works = [s for s in trace["spans"] if s["name"] == "work"]
    assert sorted(s["output"] for s in works) == [2, 3]
    assert {s["parent_id"] for s in works} == {span_id}


def test_update_trace_from_anywhere_inside_it(gateway: RunningGateway) -> None:
    @ct.observe(name="deep")
    def deep() -> None:
        ct.update_trace(user_id="user-7", tags=["beta"], metadata={"plan": "pro"})

    @ct.observe(name="request")
    def request() -> str | None:
        ct.update_trace(session_id="session-1", tags=["web"], name="chat-turn")
        deep()
        ct.update_trace(output={"final": True})
        return ct.get_current_trace_id()

    trace = stored(gateway, request())
    assert trace["name"] == "chat-turn"
    assert trace["user_id"] == "user-7"
    assert trace["session_id"] == "session-1"
    assert sorted(trace["tags"]) == ["beta", "web"]
    assert trace["metadata"] == {"plan": "pro"}
    assert trace["output"] == {"final": True}


def test_update_trace_after_the_root_ended(gateway: RunningGateway) -> None:
    done = threading.Event()
    later: list[Any] = []

    @ct.observe(name="short-root")
    def root() -> str | None:
        # a thread that outlives the root span, in the root's context
        thread = threading.Thread(target=ct.bind_context(lambda: (done.wait(5), late())))
        later.append(thread)
        thread.start()
        return ct.get_current_trace_id()

    def late() -> None:
        ct.update_trace(user_id="late-user")

    trace_id = root()
    done.set()
    later[0].join(5)
    trace = stored(gateway, trace_id)
    assert trace["user_id"] == "late-user"
    assert trace["name"] == "short-root"


def test_ids_outside_a_trace_are_none_and_updates_are_ignored(gateway: RunningGateway) -> None:
    assert ct.get_current_trace_id() is None
    assert ct.get_current_span_id() is None
    ct.update_trace(user_id="nobody")  # logged once, no error
    ct.update_current_span(output="nothing")
    assert ct.current_span() is None


def test_update_current_span_from_inside_a_decorated_function(gateway: RunningGateway) -> None:
    @ct.observe(name="llm-call", kind="generation")
    def call() -> str | None:
        ct.update_current_span(
            model="demo-model",
            usage={"input_tokens": 10, "output_tokens": 5},
            metadata={"route": "a"},
        )
        return ct.get_current_trace_id()

    trace = stored(gateway, call())
    span = spans_by_name(trace)["llm-call"]
    assert span["kind"] == "generation"
    assert span["model"] == "demo-model"
    assert span["usage"]["input_tokens"] == 10
    assert span["usage"]["output_tokens"] == 5
    assert trace["usage"]["total_tokens"] == 15


async def test_async_with_span(gateway: RunningGateway) -> None:
    async with ct.span("async-block", kind="tool", input="x") as s:
        s.update(output="y")
        trace_id = ct.get_current_trace_id()
    trace = await asyncio.to_thread(stored, gateway, trace_id)
    span = spans_by_name(trace)["async-block"]
    assert (span["kind"], span["input"], span["output"]) == ("tool", "x", "y")


def test_scores_are_stored_with_the_trace(gateway: RunningGateway) -> None:
    @ct.observe(name="answered")
    def answered() -> str | None:
        ct.score(None, "relevance", 0.75, source="code")  # None: the current trace
        return ct.get_current_trace_id()

    trace_id = answered()
    assert trace_id is not None
    ct.score(trace_id, "thumbs", True, comment="great answer")
    ct.score(trace_id, "category", "billing", source="human", author="ana")
    trace = stored(gateway, trace_id)
    scores = {s["name"]: s for s in trace["scores"]}
    assert scores["thumbs"]["value"] is True
    assert scores["thumbs"]["data_type"] == "boolean"
    assert scores["thumbs"]["comment"] == "great answer"
    assert scores["thumbs"]["source"] == "user"
    assert scores["relevance"]["value"] == 0.75
    assert scores["category"]["value"] == "billing"
    assert scores["category"]["author"] == "ana"


def test_unknown_kinds_are_refused_at_once() -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        ct.observe(kind="chain")
    with pytest.raises(ValueError, match="kind must be one of"):
        ct.span("x", kind="llm")


def test_score_rejects_what_it_cannot_store(gateway: RunningGateway) -> None:
    with pytest.raises(TypeError):
        ct.score("0" * 31 + "1", "bad", [1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="source"):
        ct.score("0" * 31 + "1", "bad", 1, source="robot")
    with pytest.raises(ValueError, match="trace_id"):
        ct.score(None, "orphan", 1)


def test_values_that_json_cannot_hold_are_recorded_readably(gateway: RunningGateway) -> None:
    class Opaque:
        def __repr__(self) -> str:
            return "<Opaque thing>"

    @ct.observe(name="odd-values")
    def odd(payload: Any, table: dict[int, str]) -> Any:
        return {"set": {3}, "bytes": b"abc", "obj": Opaque(), "big": 2**70}

    @ct.observe(name="holder")
    def holder() -> str | None:
        odd(Opaque(), {1: "one"})
        return ct.get_current_trace_id()

    span = spans_by_name(stored(gateway, holder()))["odd-values"]
    assert span["input"] == {"payload": "<Opaque thing>", "table": {"1": "one"}}
    assert "<Opaque thing>" in span["output"]  # too odd for JSON: its repr
