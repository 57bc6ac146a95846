"""Streams of chat completion chunks that close their generation span when they end."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import Any

from controltower.sdk.live import LiveSpan


class ChunkAccumulator:
    """Builds the assistant message, finish reason and usage from a stream's chunks."""

    def __init__(self, span: LiveSpan) -> None:
        self._span = span
        self._content: dict[int, list[str]] = {}
        self._tools: dict[int, dict[int, dict[str, Any]]] = {}
        self._finish: dict[int, str] = {}
        self._usage: Any = None
        self._model: str | None = None

    def add(self, chunk: Any) -> None:
        """Take in one chunk (the first content marks the time to first token)."""
        self._model = getattr(chunk, "model", None) or self._model
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            self._usage = usage
        for choice in getattr(chunk, "choices", None) or ():
            self._choice(choice)

    def _choice(self, choice: Any) -> None:
        delta = choice.delta
        index = choice.index
        if delta is not None:
            text = delta.content or delta.refusal
            if (text or delta.tool_calls) and self._span.first_token_ns is None:
                self._span.first_token_ns = time.time_ns()
            if text:
                self._content.setdefault(index, []).append(text)
            for call in delta.tool_calls or ():
                self._tool_delta(index, call)
        if choice.finish_reason:
            self._finish[index] = choice.finish_reason

    def _tool_delta(self, index: int, call: Any) -> None:
        calls = self._tools.setdefault(index, {})
        found = calls.setdefault(
            call.index, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
        )
        if call.id:
            found["id"] = call.id
        function = call.function
        if function is not None:
            found["function"]["name"] += function.name or ""
            found["function"]["arguments"] += function.arguments or ""

    def finish(self, error: BaseException | None = None) -> None:
        """Put what the stream said into the span and end it."""
        span = self._span
        if span.end_ns is not None:
            return
        indexes = sorted(set(self._content) | set(self._tools) | set(self._finish))
        messages = [self._message(i) for i in indexes]
        if messages:
            span.output = messages[0] if len(messages) == 1 else messages
        if self._model:
            span.model = self._model
        if self._usage is not None:
            span.usage = openai_usage(self._usage)
        if self._finish:
            span.metadata = {**(span.metadata or {}), "finish_reason": self._finish_reasons()}
        if error is not None:
            span.fail(error)
        else:
            span.end()

    def _message(self, index: int) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(self._content.get(index, ())) or None,
        }
        tools = self._tools.get(index)
        if tools:
            message["tool_calls"] = [tools[k] for k in sorted(tools)]
        return message

    def _finish_reasons(self) -> str | list[str]:
        reasons = [self._finish[k] for k in sorted(self._finish)]
        return reasons[0] if len(reasons) == 1 else reasons


class TracedStream:
    """Wraps `openai.Stream`: iterate it as usual; the span ends when it is consumed or closed."""

    def __init__(self, stream: Any, span: LiveSpan) -> None:
        self._stream = stream
        self._acc = ChunkAccumulator(span)

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            chunk = next(self._stream)
        except StopIteration:
            self._acc.finish()
            raise
        except BaseException as exc:
            self._acc.finish(exc)
            raise
        self._acc.add(chunk)
        return chunk

    def close(self) -> None:
        """Close the response; the span ends with what was read so far."""
        try:
            self._stream.close()
        finally:
            self._acc.finish()

    def __enter__(self) -> TracedStream:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        return _delegate(self, name)

    def __del__(self) -> None:
        acc = getattr(self, "_acc", None)
        if acc is not None:
            acc.finish()  # dropped without being read to the end or closed


class AsyncTracedStream:
    """Wraps `openai.AsyncStream` like `TracedStream`."""

    def __init__(self, stream: Any, span: LiveSpan) -> None:
        self._stream = stream
        self._acc = ChunkAccumulator(span)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        try:
            chunk = await self._stream.__anext__()
        except StopAsyncIteration:
            self._acc.finish()
            raise
        except BaseException as exc:
            self._acc.finish(exc)
            raise
        self._acc.add(chunk)
        return chunk

    async def close(self) -> None:
        """Close the response; the span ends with what was read so far."""
        try:
            await self._stream.close()
        finally:
            self._acc.finish()

    async def aclose(self) -> None:
        """Alias of `close()`, as on `openai.AsyncStream`."""
        await self.close()

    async def __aenter__(self) -> AsyncTracedStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __getattr__(self, name: str) -> Any:
        return _delegate(self, name)

    def __del__(self) -> None:
        acc = getattr(self, "_acc", None)
        if acc is not None:
            acc.finish()


def _delegate(wrapper: Any, name: str) -> Any:
    stream = wrapper.__dict__.get("_stream")
    if stream is None:  # not initialised (or tearing down): no recursion through here
        raise AttributeError(name)
    return getattr(stream, name)


def openai_usage(usage: Any) -> dict[str, int] | None:
    """Our token counts from an OpenAI usage object (or dict), nested details included."""
    if usage is None:
        return None
    if not isinstance(usage, dict):
        dump = getattr(usage, "model_dump", None)
        usage = dump() if callable(dump) else vars(usage)
    found = {
        "input_tokens": usage.get("prompt_tokens"),
        "output_tokens": usage.get("completion_tokens"),
        "cached_tokens": (usage.get("prompt_tokens_details") or {}).get("cached_tokens"),
        "reasoning_tokens": (usage.get("completion_tokens_details") or {}).get("reasoning_tokens"),
    }
    return {key: value for key, value in found.items() if isinstance(value, int)}
