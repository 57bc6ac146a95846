"""The mock provider: OpenAI-shaped answers with scripted latency and injected failures.

It ships in the package for the quick start, the tests, demos and benchmarks: no machine
here reaches a real provider.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import random
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from controltower.domain import Usage
from controltower.errors import (
    APIError,
    ContentPolicy,
    ContextWindowExceeded,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
)
from controltower.providers.base import (
    SSE_DONE,
    ChatCompletion,
    ChatRequest,
    ChatStream,
    EmbeddingResult,
    StreamSummary,
    sse_event,
)
from controltower.settings import Deployment, MockOptions, MockToolCall


class MockProvider:
    """Answers in process; behaviour comes from the deployment's `mock:` options."""

    def __init__(self, deployment: Deployment) -> None:
        self.model = deployment.model
        self.label = deployment.label
        self.options = deployment.mock or MockOptions()
        self.calls = 0
        self._scripted = itertools.cycle(self.options.replies) if self.options.replies else None
        self._random = random.Random(0)

    async def chat(self, request: ChatRequest) -> ChatCompletion | ChatStream:
        """Answer like an OpenAI model would, or fail as configured."""
        failure = await self._begin(request.timeout_s, may_cut=True)
        reply = _Reply(self._reply(request.body))
        usage = Usage(input_tokens=_count_tokens(request.body), output_tokens=reply.tokens)
        if request.stream:
            return await self._stream(request, reply, usage, cut=failure == "cut")
        if failure == "cut":
            raise UpstreamError(f"{self.label} broke off its answer (mock failure 'cut')")
        if self.options.ttft_ms or self.options.token_ms:
            await asyncio.sleep(
                (self.options.ttft_ms + self.options.token_ms * reply.tokens) / 1000
            )
        data = _completion(self.model, reply, usage, request.body.get("n") or 1)
        return ChatCompletion(orjson.dumps(data), data, usage, self.model)

    async def embed(self, body: dict[str, Any], timeout_s: float) -> EmbeddingResult:
        """Deterministic unit vectors derived from a hash of each input."""
        await self._begin(timeout_s, may_cut=False)
        inputs = body.get("input")
        items = [inputs] if isinstance(inputs, str) else list(inputs or [])
        dims = int(body.get("dimensions") or self.options.embedding_dims)
        data = [
            {"object": "embedding", "index": i, "embedding": _vector(str(item), dims)}
            for i, item in enumerate(items)
        ]
        tokens = sum(len(_tokens(str(item))) for item in items)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        payload = {"object": "list", "data": data, "model": self.model, "usage": usage}
        return EmbeddingResult(orjson.dumps(payload), Usage(input_tokens=tokens), self.model)

    async def _begin(self, timeout_s: float, may_cut: bool) -> str:
        """Count the call and fail it as configured; returns "cut" for a call to break later."""
        self.calls += 1
        failure = self._failure()
        if failure == "timeout":
            await self._hang(timeout_s)
        if failure != "none" and not (may_cut and failure == "cut"):
            raise _error(failure, self.label, self.options.retry_after_s)
        return failure

    def _failure(self) -> str:
        o = self.options
        if o.failure == "none":
            return "none"
        if o.failure_times is not None:
            return o.failure if self.calls <= o.failure_times else "none"
        return o.failure if self._random.random() < o.failure_rate else "none"

    async def _hang(self, timeout_s: float) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.sleep(3600)
        except TimeoutError:
            raise UpstreamTimeout(f"{self.label} did not answer within {timeout_s:g} s") from None

    def _reply(self, body: dict[str, Any]) -> str | MockToolCall:
        if self._scripted is not None:
            return next(self._scripted)
        if self.options.reply != "echo":
            return self.options.reply
        for message in reversed(body.get("messages") or []):
            if message.get("role") == "user":
                return _text(message.get("content"))
        return "Hello from the controltower mock model."

    async def _stream(
        self, request: ChatRequest, reply: _Reply, usage: Usage, cut: bool
    ) -> ChatStream:
        if self.options.ttft_ms:
            await asyncio.sleep(self.options.ttft_ms / 1000)
        summary = StreamSummary()
        events = self._events(reply, usage, request.client_wants_usage, summary, cut)
        first = await anext(events)
        return ChatStream(_prepend(first, events), summary)

    async def _events(
        self, reply: _Reply, usage: Usage, wants_usage: bool, summary: StreamSummary, cut: bool
    ) -> AsyncIterator[bytes]:
        base = {
            "id": _id(),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model,
        }
        first = {"role": "assistant", "content": None if reply.call else ""}
        chunks = [_delta(first, None)]
        chunks += [_delta(delta, None) for delta in reply.deltas()]
        chunks.append(_delta({}, reply.finish_reason))
        for i, choice in enumerate(chunks):
            if cut and i > self.options.cut_after:
                raise UpstreamError(f"{self.label} broke off its stream (mock failure 'cut')")
            if self.options.token_ms and 1 < i < len(chunks) - 1:
                await asyncio.sleep(self.options.token_ms / 1000)
            chunk = {**base, "choices": [choice]}
            summary.add(chunk)
            yield sse_event(orjson.dumps(chunk))
        summary.usage = usage
        if wants_usage:
            yield sse_event(orjson.dumps({**base, "choices": [], "usage": _usage_json(usage)}))
        yield SSE_DONE


class _Reply:
    """A scripted or echoed reply: text, or a call of one tool."""

    def __init__(self, reply: str | MockToolCall) -> None:
        self.text = reply if isinstance(reply, str) else None
        self.call = reply if isinstance(reply, MockToolCall) else None
        self.call_id = "call_mock" + random.getrandbits(48).to_bytes(6, "big").hex()
        self.arguments = orjson.dumps(self.call.arguments).decode() if self.call else ""
        self.tokens = len(_tokens(self.text or self.arguments.replace(",", " ")))

    @property
    def finish_reason(self) -> str:
        """`tool_calls` for a tool call, else `stop`."""
        return "tool_calls" if self.call else "stop"

    def message(self) -> dict[str, Any]:
        """The assistant message of a whole answer."""
        if self.call is None:
            return {"role": "assistant", "content": self.text}
        call = {
            "id": self.call_id,
            "type": "function",
            "function": {"name": self.call.tool, "arguments": self.arguments},
        }
        return {"role": "assistant", "content": None, "tool_calls": [call]}

    def deltas(self) -> list[dict[str, Any]]:
        """The stream deltas after the role chunk: words, or the call in two halves."""
        if self.call is None:
            return [{"content": piece} for piece in _tokens(self.text or "") or [""]]
        half = len(self.arguments) // 2
        head = {
            "index": 0,
            "id": self.call_id,
            "type": "function",
            "function": {"name": self.call.tool, "arguments": self.arguments[:half]},
        }
        tail = {"index": 0, "function": {"arguments": self.arguments[half:]}}
        return [{"tool_calls": [head]}, {"tool_calls": [tail]}]


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for item in rest:
        yield item


def _error(failure: str, label: str, retry_after_s: float) -> APIError:
    note = f"(mock failure {failure!r})"
    if failure == "429":
        return RateLimited(f"{label} is rate limited {note}", retry_after=retry_after_s)
    if failure == "context_window":
        return ContextWindowExceeded(f"{label}: maximum context length exceeded {note}")
    if failure == "content_policy":
        return ContentPolicy(f"{label}: refused by content policy {note}")
    if failure == "malformed":
        return UpstreamError(f"{label} sent a malformed body {note}")
    return UpstreamError(f"{label} answered HTTP {failure} {note}")


def _completion(model: str, reply: _Reply, usage: Usage, n: int) -> dict[str, Any]:
    choices = [
        {
            "index": i,
            "message": reply.message(),
            "finish_reason": reply.finish_reason,
            "logprobs": None,
        }
        for i in range(n)
    ]
    return {
        "id": _id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": _usage_json(usage),
    }


def _delta(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}


def _usage_json(usage: Usage) -> dict[str, int]:
    i, o = usage.input_tokens or 0, usage.output_tokens or 0
    return {"prompt_tokens": i, "completion_tokens": o, "total_tokens": i + o}


def _id() -> str:
    return "chatcmpl-mock" + random.getrandbits(64).to_bytes(8, "big").hex()


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _tokens(text: str) -> list[str]:
    """Split into word-sized pieces that join back to the text (a stand-in tokenizer)."""
    if not text:
        return []
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


def _count_tokens(body: dict[str, Any]) -> int:
    return sum(len(_tokens(_text(m.get("content")))) + 3 for m in body.get("messages") or [])


def _vector(text: str, dims: int) -> list[float]:
    seed = hashlib.sha256(text.encode()).digest()
    raw = (seed * (dims * 4 // len(seed) + 1))[: dims * 4]
    values = [v / 2**32 - 0.5 for v in struct.unpack(f"<{dims}I", raw)]
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    return [v / norm for v in values]
