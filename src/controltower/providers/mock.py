"""The mock provider: OpenAI-shaped answers with scripted latency and injected failures.

It ships in the package for the quick start, the tests, demos and benchmarks: no machine
here reaches a real provider.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import random
import re
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
    UpstreamBadRequest,
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

# Size limits a real provider has too, so that no request makes the mock build a huge answer
MAX_CHOICES = 128  # OpenAI's limit of `n`
MAX_OUTPUT_TOKENS = 16_384  # of one reply, like gpt-4o's
MAX_REPLY_CHARS = 4 * MAX_OUTPUT_TOKENS  # a mock token is a word, which may be long
MAX_EMBEDDING_INPUTS = 2048
MAX_EMBEDDING_DIMS = 4096


class MockProvider:
    """Answers in process; behaviour comes from the deployment's `mock:` options."""

    def __init__(self, deployment: Deployment) -> None:
        self.model = deployment.model
        self.label = deployment.label
        self.options = deployment.mock or MockOptions()
        self.calls = 0
        self._scripted = itertools.cycle(self.options.replies) if self.options.replies else None
        self._rules = [(re.compile(r.match), r.reply) for r in self.options.rules]
        self._random = random.Random(0)

    async def chat(self, request: ChatRequest) -> ChatCompletion | ChatStream:
        """Answer like an OpenAI model would, or fail as configured."""
        n = self._whole(request.body, "n", MAX_CHOICES) or 1
        max_tokens = self._max_tokens(request.body)
        failure = await self._begin(request.timeout_s, may_cut=True)
        reply = _Reply(self._reply(request.body), max_tokens)
        usage = Usage(input_tokens=_count_tokens(request.body), output_tokens=reply.tokens)
        if request.stream:
            return await self._stream(request, reply, usage, n, cut=failure == "cut")
        if failure == "cut":
            raise UpstreamError(f"{self.label} broke off its answer (mock failure 'cut')")
        if self.options.ttft_ms or self.options.token_ms:
            await asyncio.sleep(
                (self.options.ttft_ms + self.options.token_ms * reply.tokens) / 1000
            )
        data = _completion(self.model, reply, usage, n)
        return ChatCompletion(orjson.dumps(data), data, usage, self.model)

    async def embed(self, body: dict[str, Any], timeout_s: float) -> EmbeddingResult:
        """Deterministic unit vectors derived from a hash of each input."""
        dims = self._whole(body, "dimensions", MAX_EMBEDDING_DIMS) or self.options.embedding_dims
        inputs = body.get("input")
        items = [inputs] if isinstance(inputs, str) else list(inputs or [])
        if len(items) > MAX_EMBEDDING_INPUTS:
            raise self._refuse(
                f"'input' must have at most {MAX_EMBEDDING_INPUTS} items, but got {len(items)}",
                "input",
                "array_above_max_length",
            )
        await self._begin(timeout_s, may_cut=False)
        data = [
            {"object": "embedding", "index": i, "embedding": _vector(str(item), dims)}
            for i, item in enumerate(items)
        ]
        tokens = sum(len(_tokens(str(item))) for item in items)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        payload = {"object": "list", "data": data, "model": self.model, "usage": usage}
        return EmbeddingResult(orjson.dumps(payload), Usage(input_tokens=tokens), self.model)

    def _whole(self, body: dict[str, Any], name: str, most: int) -> int | None:
        """A whole-number parameter from 1 to `most`, refused as OpenAI refuses it."""
        value = body.get(name)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            got = type(value).__name__
            raise self._refuse(
                f"Invalid type for '{name}': expected an integer, but got {got} instead.",
                name,
                "invalid_type",
            )
        if value < 1:
            raise self._refuse(
                f"Invalid '{name}': integer below minimum value. "
                f"Expected a value >= 1, but got {value} instead.",
                name,
                "integer_below_min_value",
            )
        if value > most:
            raise self._refuse(
                f"Invalid '{name}': integer above maximum value. "
                f"Expected a value <= {most}, but got {value} instead.",
                name,
                "integer_above_max_value",
            )
        return value

    def _max_tokens(self, body: dict[str, Any]) -> int:
        name = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
        value = self._whole(body, name, 2**63)
        if value is not None and value > MAX_OUTPUT_TOKENS:
            raise self._refuse(
                f"{name} is too large: {value}. This model supports at most "
                f"{MAX_OUTPUT_TOKENS} completion tokens, whereas you provided {value}.",
                name,
                "invalid_value",
            )
        return value or MAX_OUTPUT_TOKENS

    def _refuse(self, message: str, param: str, code: str) -> UpstreamBadRequest:
        return UpstreamBadRequest(f"{self.label}: {message}", param=param, code=code)

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
        if self._rules:
            messages = body.get("messages") or ()
            text = "\n".join(_text(m.get("content")) for m in messages if isinstance(m, dict))
            for pattern, reply in self._rules:
                if pattern.search(text):
                    return reply
        if self._scripted is not None:
            return next(self._scripted)
        if self.options.reply != "echo":
            return self.options.reply
        for message in reversed(body.get("messages") or []):
            if message.get("role") == "user":
                return _text(message.get("content"))
        return "Hello from the controltower mock model."

    async def _stream(
        self, request: ChatRequest, reply: _Reply, usage: Usage, n: int, cut: bool
    ) -> ChatStream:
        if self.options.ttft_ms:
            await asyncio.sleep(self.options.ttft_ms / 1000)
        summary = StreamSummary()
        events = self._events(reply, usage, request.client_wants_usage, summary, n, cut)
        first = await anext(events)
        return ChatStream(_prepend(first, events), summary)

    async def _events(
        self,
        reply: _Reply,
        usage: Usage,
        wants_usage: bool,
        summary: StreamSummary,
        n: int,
        cut: bool,
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
            for index in range(n):  # one chunk per choice, as OpenAI interleaves them
                chunk = {**base, "choices": [{**choice, "index": index}]}
                summary.add(chunk)
                yield sse_event(orjson.dumps(chunk))
        summary.usage = usage
        if wants_usage:
            yield sse_event(orjson.dumps({**base, "choices": [], "usage": _usage_json(usage)}))
        yield SSE_DONE


class _Reply:
    """A scripted or echoed reply: text (cut at `max_tokens`), or a call of one tool."""

    def __init__(self, reply: str | MockToolCall, max_tokens: int = MAX_OUTPUT_TOKENS) -> None:
        self.call = reply if isinstance(reply, MockToolCall) else None
        self.text: str | None = None
        self.cut = False
        if isinstance(reply, str):
            self.text, self.cut = _cut(reply, max_tokens)
        self.call_id = "call_mock" + random.getrandbits(48).to_bytes(6, "big").hex()
        self.arguments = orjson.dumps(self.call.arguments).decode() if self.call else ""
        self.tokens = len(_tokens(self.text or self.arguments.replace(",", " ")))

    @property
    def finish_reason(self) -> str:
        """`tool_calls` for a tool call, `length` for a text cut short, else `stop`."""
        if self.call:
            return "tool_calls"
        return "length" if self.cut else "stop"

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


def _cut(text: str, max_tokens: int) -> tuple[str, bool]:
    """The text within `max_tokens` mock tokens and MAX_REPLY_CHARS, and whether it was cut."""
    short = text[:MAX_REPLY_CHARS]
    pieces = _tokens(short)
    if len(pieces) > max_tokens:
        return "".join(pieces[:max_tokens]), True
    return short, len(short) < len(text)


def _count_tokens(body: dict[str, Any]) -> int:
    return sum(len(_tokens(_text(m.get("content")))) + 3 for m in body.get("messages") or [])


def _vector(text: str, dims: int) -> list[float]:
    seed = hashlib.sha256(text.encode()).digest()
    raw = (seed * (dims * 4 // len(seed) + 1))[: dims * 4]
    values = [v / 2**32 - 0.5 for v in struct.unpack(f"<{dims}I", raw)]
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    return [v / norm for v in values]
