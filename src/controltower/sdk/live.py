"""Open spans on the caller's thread: ids, clock, the current span, and nothing more.

Everything here runs on the application's hot path, so a span records raw values (integer
ids, nanosecond clock readings, the call's arguments as given) and the export thread turns
them into JSON later.
"""

from __future__ import annotations

import contextlib
import random
import time
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any

from controltower.sdk import runtime

# the span the code running now is inside; asyncio tasks inherit it, threads start empty
CURRENT: ContextVar[LiveSpan | None] = ContextVar("controltower_current_span", default=None)

SPAN_KINDS = ("span", "generation", "tool", "retrieval", "embedding", "guardrail", "event")
MAX_ITEMS = 1000  # items of a generator's output kept for the span (the rest are counted)

_getrandbits = random.getrandbits
_random = random.random
_time_ns = time.time_ns


class LiveSpan:
    """A span while it runs: `update()` it; it is exported when it ends.

    No `__slots__` on purpose: fields that keep their class default cost nothing per span,
    so opening one is a handful of attribute stores.
    """

    trace_id: int
    id: int
    # the trace's first span in this process; None on that span itself (no reference
    # cycle, so a finished span is freed at once instead of by the cycle collector)
    root: LiveSpan | None = None
    name: str
    kind: str
    start_ns: int
    parent_id: int | None = None
    end_ns: int | None = None
    sampled: bool = True
    # the call's arguments as passed; bound to parameter names in the export thread
    args: tuple[Any, ...] | None = None
    kwargs: dict[str, Any] | None = None
    binder: Any = None
    input: Any = None
    output: Any = None
    items: list[Any] | None = None  # a generator's yielded items, when output is captured
    items_dropped: int = 0
    status: str = "ok"
    error: str | None = None
    model: str | None = None
    provider: str | None = None
    parameters: dict[str, Any] | None = None
    usage: Any = None
    cost: float | None = None
    first_token_ns: int | None = None
    prompt_name: str | None = None
    prompt_version: int | None = None
    metadata: dict[str, Any] | None = None
    trace_fields: dict[str, Any] | None = None  # update_trace() values, on the root span
    _token: Token[LiveSpan | None] | None = None

    @property
    def trace_id_hex(self) -> str:
        """The trace id as 32 hex digits."""
        return f"{self.trace_id:032x}"

    @property
    def id_hex(self) -> str:
        """The span id as 16 hex digits."""
        return f"{self.id:016x}"

    @property
    def traceparent(self) -> str:
        """The W3C `traceparent` header naming this span as the parent."""
        flags = "01" if self.sampled else "00"
        return f"00-{self.trace_id:032x}-{self.id:016x}-{flags}"

    def update(
        self,
        *,
        name: str | None = None,
        input: Any = None,
        output: Any = None,
        metadata: dict[str, Any] | None = None,
        model: str | None = None,
        provider: str | None = None,
        parameters: dict[str, Any] | None = None,
        usage: Any = None,
        cost: float | None = None,
        prompt_name: str | None = None,
        prompt_version: int | None = None,
        status: str | None = None,
        error: str | None = None,
    ) -> None:
        """Set fields of the span; None leaves a field as it is, metadata is merged."""
        given = {
            "name": name, "input": input, "output": output, "model": model,
            "provider": provider, "parameters": parameters, "usage": usage, "cost": cost,
            "prompt_name": prompt_name, "prompt_version": prompt_version,
            "status": status, "error": error,
        }  # fmt: skip
        for key, value in given.items():
            if value is not None:
                setattr(self, key, value)
        if output is not None:
            self.items = None  # an explicit output replaces a generator's items
        if metadata:
            self.metadata = {**(self.metadata or {}), **metadata}

    def end(self) -> None:
        """Close the span (once) and hand it to the exporter."""
        if self.end_ns is not None:
            return
        self.end_ns = _time_ns()
        if self.sampled:
            rt = runtime.RUNTIME
            if rt is not None:
                rt.put(self)

    def fail(self, exc: BaseException) -> None:
        """Mark the span failed with the exception's type and message, and close it."""
        self.status = "error"
        self.error = describe_error(exc)
        self.end()

    def keep(self, item: Any) -> None:
        """Remember one yielded item as part of the output (bounded)."""
        items = self.items
        if items is None:
            return
        if len(items) < MAX_ITEMS:
            items.append(item)
        else:
            self.items_dropped += 1

    def __enter__(self) -> LiveSpan:
        self._token = CURRENT.set(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        token, self._token = self._token, None
        if token is not None:
            # a span exited in another context than it was entered in stays set there
            with contextlib.suppress(ValueError):
                CURRENT.reset(token)
        if exc is not None and not isinstance(exc, GeneratorExit):
            self.fail(exc)
        else:
            self.end()

    async def __aenter__(self) -> LiveSpan:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


class NoopSpan(LiveSpan):
    """What `ct.span` gives when tracing is off or the trace is not sampled."""

    sampled = False
    trace_id = 0
    id = 0
    name = ""
    kind = "span"
    start_ns = 0

    def update(self, **_: Any) -> None:
        """Ignore the fields."""

    def end(self) -> None:
        """Nothing to export."""

    def __enter__(self) -> LiveSpan:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


NOOP = NoopSpan()


def open_span(name: str, kind: str) -> LiveSpan | None:
    """A started span under the current one; None when nothing is to be recorded.

    A root span decides sampling for its whole trace. An unsampled root is still returned
    (children must see the decision), but it is never exported.
    """
    parent = CURRENT.get()
    span = LiveSpan()
    if parent is None:
        rt = runtime.RUNTIME or runtime.autoinit()
        if not rt.enabled:
            return None
        span.trace_id = _getrandbits(128) or 1
        if rt.sample_rate < 1.0 and _random() >= rt.sample_rate:
            span.sampled = False
    elif parent.sampled:
        span.trace_id = parent.trace_id
        span.parent_id = parent.id
        span.root = parent.root or parent
    else:
        return None
    span.id = _getrandbits(64) or 1
    span.name = name
    span.kind = kind
    span.start_ns = _time_ns()
    return span


def check_kind(kind: str) -> str:
    """The kind, if it is one the trace model knows; else a ValueError naming them."""
    if kind not in SPAN_KINDS:
        raise ValueError(f"kind must be one of {', '.join(SPAN_KINDS)}, not {kind!r}")
    return kind


def describe_error(exc: BaseException) -> str:
    """`Type: message`, robust to exceptions whose `str()` fails."""
    try:
        message = str(exc)
    except Exception:
        message = "<unprintable>"
    kind = type(exc).__qualname__
    return f"{kind}: {message}" if message else kind
