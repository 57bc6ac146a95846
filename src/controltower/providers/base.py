"""The provider seam: one protocol each for chat and embeddings, and the values they carry."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import orjson

from controltower.domain import CallTrace, Usage

log = logging.getLogger("controltower.providers")


@dataclass(slots=True)
class ChatRequest:
    """An OpenAI-format chat completion body, already checked, bound for one deployment."""

    body: dict[str, Any]
    timeout_s: float = 60.0
    # the client asked for the usage chunk (stream_options.include_usage); the gateway always
    # asks upstream for usage so that it can trace tokens, and hides the chunk otherwise
    client_wants_usage: bool = False
    # wrappers record one span per attempt here; None when nobody traces the call
    trace: CallTrace | None = None
    # who calls, for which project (the gateway's CallContext): read by the gateway's
    # wrappers (budgets, later guardrails and the cache); providers never look at it
    context: Any = None

    @property
    def stream(self) -> bool:
        """Whether the client asked for server-sent events."""
        return bool(self.body.get("stream"))


@dataclass(slots=True)
class ChatCompletion:
    """A whole (non-streamed) answer: the bytes for the client and what traces need."""

    body: bytes
    data: dict[str, Any]
    usage: Usage
    model: str | None = None


@dataclass(slots=True)
class StreamSummary:
    """What a stream said, gathered from its chunks as they pass through."""

    model: str | None = None
    usage: Usage = field(default_factory=Usage)
    texts: dict[int, list[str]] = field(default_factory=dict)
    tool_calls: dict[int, dict[int, dict[str, Any]]] = field(default_factory=dict)
    finish_reasons: dict[int, str] = field(default_factory=dict)
    events: int = 0
    malformed: int = 0  # events passed through that were not JSON objects
    raw: list[bytes] = field(default_factory=list)

    def add_raw(self, payload: bytes) -> None:
        """Count one chunk and keep its JSON undecoded; `resolve` folds it in later."""
        self.events += 1
        self.raw.append(payload)

    def resolve(self) -> None:
        """Decode and fold in the chunks kept by `add_raw`."""
        raw, self.raw = self.raw, []
        for payload in raw:
            try:
                chunk = orjson.loads(payload)
            except orjson.JSONDecodeError:
                chunk = None
            if isinstance(chunk, dict):
                self._fold(chunk)
            else:
                self.malformed += 1

    def add(self, chunk: dict[str, Any]) -> None:
        """Count and fold one OpenAI `chat.completion.chunk` into the summary."""
        self.events += 1
        self._fold(chunk)

    def _fold(self, chunk: dict[str, Any]) -> None:
        if self.model is None:
            self.model = chunk.get("model")
        usage = chunk.get("usage")
        if usage:
            self.usage = usage_from_openai(usage)
        for choice in chunk.get("choices") or ():
            index = choice.get("index", 0)
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if content:
                self.texts.setdefault(index, []).append(content)
            for call in delta.get("tool_calls") or ():
                self._add_tool_call(index, call)
            if choice.get("finish_reason"):
                self.finish_reasons[index] = choice["finish_reason"]

    def _add_tool_call(self, index: int, call: dict[str, Any]) -> None:
        calls = self.tool_calls.setdefault(index, {})
        slot = calls.setdefault(
            call.get("index", 0),
            {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
        )
        if call.get("id"):
            slot["id"] = call["id"]
        fn = call.get("function") or {}
        slot["function"]["name"] += fn.get("name") or ""
        slot["function"]["arguments"] += fn.get("arguments") or ""

    def output(self) -> list[dict[str, Any]]:
        """The assembled assistant messages, one per choice, in the chat completion shape."""
        self.resolve()
        indexes = sorted(set(self.texts) | set(self.tool_calls) | set(self.finish_reasons))
        out = []
        for i in indexes:
            message: dict[str, Any] = {
                "role": "assistant",
                "content": "".join(self.texts.get(i, [])),
            }
            if i in self.tool_calls:
                message["tool_calls"] = [self.tool_calls[i][k] for k in sorted(self.tool_calls[i])]
            out.append(
                {"index": i, "message": message, "finish_reason": self.finish_reasons.get(i)}
            )
        return out


EndTap = Callable[[BaseException | None], None]


class ChatStream:
    """A stream that has already produced its first event; iterate for SSE bytes.

    The wrappers of a chain observe it through taps, not by wrapping it in generators of
    their own: `on_end` registers a function called once when the stream ends (all read,
    failed, or closed early, given the error or None), in the order registered, after
    the upstream is closed. The balancer frees its deployment this way and the gateway
    records the trace; iteration stays one generator over the provider's events.
    """

    __slots__ = ("_end_taps", "_ended", "_events", "_running", "summary")

    def __init__(self, events: AsyncIterator[bytes], summary: StreamSummary) -> None:
        self._events = events
        self.summary = summary
        self._end_taps: list[EndTap] = []
        self._running: AsyncGenerator[bytes, None] | None = None
        self._ended = False

    def on_end(self, tap: EndTap) -> None:
        """Call `tap(error)` once the stream has ended (after the taps added before it)."""
        self._end_taps.append(tap)

    def __aiter__(self) -> AsyncIterator[bytes]:
        if self._running is None:
            self._running = self._run()
        return self._running

    async def aclose(self) -> None:
        """Stop reading upstream, release the connection, and run the end taps."""
        if self._running is not None:
            await self._running.aclose()
        await self._end(None)  # a stream never iterated ends here

    async def _run(self) -> AsyncGenerator[bytes, None]:
        error: BaseException | None = None
        try:
            async for chunk in self._events:
                yield chunk
        except BaseException as exc:  # GeneratorExit too: the reader stopped early
            error = exc
            raise
        finally:
            await self._end(error)

    async def _end(self, error: BaseException | None) -> None:
        if self._ended:
            return
        self._ended = True
        try:
            aclose = getattr(self._events, "aclose", None)
            if aclose is not None:
                await aclose()
        finally:
            for tap in self._end_taps:
                try:
                    tap(error)
                except Exception:  # one tap's bug must not keep the others from running
                    log.exception("a stream's end tap failed")


@dataclass(slots=True)
class EmbeddingRequest:
    """An OpenAI-format embeddings body, already checked, on its way down the chain."""

    body: dict[str, Any]
    timeout_s: float = 60.0
    # wrappers record one span per attempt here; None when nobody traces the call
    trace: CallTrace | None = None
    context: Any = None  # the gateway's CallContext, as on ChatRequest


@dataclass(slots=True)
class EmbeddingResult:
    """An embeddings answer in the OpenAI format."""

    body: bytes
    usage: Usage
    model: str | None = None


@runtime_checkable
class ChatProvider(Protocol):
    """Anything that answers OpenAI-format chat requests: an adapter, a wrapper, a fake."""

    async def chat(self, request: ChatRequest) -> ChatCompletion | ChatStream:
        """Answer whole, or return a stream whose first event has arrived."""
        ...


@runtime_checkable
class EmbeddingProvider(Protocol):
    """Anything that answers OpenAI-format embedding requests."""

    async def embed(self, body: dict[str, Any], timeout_s: float) -> EmbeddingResult:
        """Embed the inputs of an OpenAI `/v1/embeddings` body."""
        ...


def usage_from_openai(usage: dict[str, Any]) -> Usage:
    """Usage from an OpenAI `usage` object, with cached and reasoning token details."""
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=usage.get("prompt_tokens"),
        output_tokens=usage.get("completion_tokens"),
        cached_tokens=prompt_details.get("cached_tokens"),
        reasoning_tokens=completion_details.get("reasoning_tokens"),
    )


def sse_event(payload: bytes) -> bytes:
    """One server-sent event carrying a JSON payload."""
    return b"data: " + payload + b"\n\n"


SSE_DONE = b"data: [DONE]\n\n"
