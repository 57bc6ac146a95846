"""The passages an application retrieved while it answered, read from its trace.

A RAG judge (faithfulness, context relevance and recall) grades an answer against what
the application actually retrieved. When the target is the user's application (a Python
callable or an HTTP endpoint) and its answer names the trace it recorded, the runner reads
that trace's `retrieval` spans, in the order they started, and takes their documents as
the sample's contexts; the contexts an answer or an item brought are used only when the
trace has no retrieval span.

Traces arrive in the store a moment after the answer (the SDK and the gateway send them
in batches), so a trace that is not there yet, or not finished, is read again, for up to
`wait_s`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any, Protocol, runtime_checkable

import orjson

from controltower.evals.targets import Answer

# the fields a retrieved document keeps its text in (OpenInference, LangChain, LlamaIndex)
_TEXT_FIELDS = ("content", "page_content", "text", "chunk", "document")


class TraceReader(Protocol):
    """Reads one trace with its spans (`ObservabilityStore.get_trace`)."""

    def get_trace(self, trace_id: str, span_io: bool = True) -> dict[str, Any] | None:
        """The trace as the query API returns it, or None when it is not (yet) stored."""
        ...


@runtime_checkable
class TraceFetcher(Protocol):
    """Reads one trace with its spans from elsewhere (a remote gateway's query API)."""

    async def fetch_trace(self, trace_id: str) -> dict[str, Any] | None:
        """The trace with its spans' inputs and outputs, or None when there is none (yet)."""
        ...


def retrieved_passages(trace: dict[str, Any]) -> tuple[str, ...]:
    """The texts of the documents of a trace's retrieval spans, in the order they started."""
    spans = [s for s in trace.get("spans") or () if s.get("kind") == "retrieval"]
    spans.sort(key=lambda s: s.get("start_time") or "")
    passages: list[str] = []
    for span in spans:
        output = span.get("output")
        documents = output.get("documents", output) if isinstance(output, dict) else output
        for document in documents if isinstance(documents, list) else [documents]:
            text = _text(document)
            if text:
                passages.append(text)
    return tuple(passages)


def _text(document: Any) -> str:
    if document is None:
        return ""
    if isinstance(document, str):
        return document
    if isinstance(document, dict):
        for key in _TEXT_FIELDS:
            value = document.get(key)
            if isinstance(value, str):
                return value
            if isinstance(value, dict):  # {"document": {"content": ...}}
                return _text(value)
    return orjson.dumps(document, default=str).decode()


class TraceContexts:
    """Fills an answer's contexts from the retrieval spans of the trace it names."""

    def __init__(self, traces: TraceReader | TraceFetcher, *, wait_s: float = 5.0) -> None:
        self.traces = traces
        self.wait_s = wait_s
        self.read = 0  # answers whose contexts came from their trace
        self.missing = 0  # answers whose trace was not found in time

    async def __call__(self, answer: Answer) -> Answer:
        """The answer, with the trace's passages as its contexts when the trace has any."""
        if not answer.trace_id:
            return answer
        trace = await self._landed(answer.trace_id)
        if trace is None:
            self.missing += 1
            return answer
        passages = retrieved_passages(trace)
        if not passages:
            return answer
        self.read += 1
        return dataclasses.replace(answer, contexts=passages)

    async def _landed(self, trace_id: str) -> dict[str, Any] | None:
        deadline = time.monotonic() + self.wait_s
        delay = 0.05
        while True:
            if isinstance(self.traces, TraceFetcher):
                trace = await self.traces.fetch_trace(trace_id)
            else:
                trace = await asyncio.to_thread(self.traces.get_trace, trace_id, True)
            if trace is not None and trace.get("end_time") is not None:
                return trace
            if time.monotonic() + delay > deadline:
                return trace
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)
