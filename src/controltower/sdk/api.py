"""Spans as context managers, trace updates, ids of the current trace, and scores."""

from __future__ import annotations

import contextvars
import functools
import logging
import random
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from controltower.sdk import runtime
from controltower.sdk.live import CURRENT, NOOP, LiveSpan, check_kind, open_span

log = logging.getLogger("controltower.sdk")

P = ParamSpec("P")
R = TypeVar("R")

SCORE_SOURCES = ("user", "human", "judge", "code", "api")
_warned_outside = False


def span(name: str, *, kind: str = "span", input: Any = None, **fields: Any) -> LiveSpan:
    """A span for a block: `with ct.span("retrieve", kind="retrieval") as s: s.update(...)`.

    Also `async with`. Extra keyword arguments are passed to `LiveSpan.update`.
    """
    opened = open_span(name, check_kind(kind))
    if opened is None:
        return NOOP
    if input is not None:
        opened.input = input
    if fields:
        opened.update(**fields)
    return opened


def current_span() -> LiveSpan | None:
    """The span the calling code runs in, or None."""
    return CURRENT.get()


def update_current_span(**fields: Any) -> None:
    """`update()` the span the calling code runs in; nothing outside of one."""
    current = CURRENT.get()
    if current is not None and current.sampled:
        current.update(**fields)


def get_current_trace_id() -> str | None:
    """The id (32 hex digits) of the trace the calling code runs in, or None."""
    current = CURRENT.get()
    return None if current is None else f"{current.trace_id:032x}"


def get_current_span_id() -> str | None:
    """The id (16 hex digits) of the span the calling code runs in, or None."""
    current = CURRENT.get()
    return None if current is None else f"{current.id:016x}"


def update_trace(
    *,
    name: str | None = None,
    user_id: str | None = None,
    session_id: str | None = None,
    tags: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    input: Any = None,
    output: Any = None,
) -> None:
    """Set fields of the current trace from anywhere inside it (None leaves a field)."""
    current = CURRENT.get()
    if current is None:
        _warn_outside()
        return
    if not current.sampled:
        return
    given = {
        "name": name, "user_id": user_id, "session_id": session_id, "tags": tags,
        "metadata": metadata, "input": input, "output": output,
    }  # fmt: skip
    fields = {key: value for key, value in given.items() if value is not None}
    if not fields:
        return
    root = current.root or current
    if root.end_ns is None:
        root.trace_fields = _merged(root.trace_fields or {}, fields)
        if root.end_ns is None:
            return  # the root's trace event will carry them
    # the root has ended (perhaps just now, in another thread): send the update by itself
    rt = runtime.RUNTIME
    if rt is not None:
        rt.put(("trace", {"id": f"{current.trace_id:032x}", **fields}))


def score(
    trace_id: str | None,
    name: str,
    value: float | bool | str,
    comment: str | None = None,
    source: str = "user",
    span_id: str | None = None,
    author: str | None = None,
) -> str:
    """Record feedback on a trace (or one span): a thumb (bool), a number or a category.

    `trace_id` None means the current trace. Returns the score's id.
    """
    if not isinstance(value, bool | int | float | str):
        raise TypeError(f"a score's value is a bool, a number or a string, not {type(value)}")
    if source not in SCORE_SOURCES:
        raise ValueError(f"source must be one of {', '.join(SCORE_SOURCES)}, not {source!r}")
    trace_id = trace_id or get_current_trace_id()
    if not trace_id:
        raise ValueError("score() needs a trace_id outside of a trace")
    score_id = f"{random.getrandbits(128):032x}"  # retried sends then replace, not repeat
    body: dict[str, Any] = {"id": score_id, "trace_id": trace_id, "name": name, "value": value}
    body["source"] = source
    for key, given in (("comment", comment), ("span_id", span_id), ("author", author)):
        if given is not None:
            body[key] = given
    rt = runtime.RUNTIME or runtime.autoinit()
    if rt.enabled:
        rt.put(("score", body))
    return score_id


def bind_context(fn: Callable[P, R]) -> Callable[P, R]:
    """`fn` bound to the caller's trace context, for thread pools and other threads.

    `pool.submit(ct.bind_context(work), item)` makes spans opened by `work` children of
    the span that submitted it. Each call runs in its own copy of that context.
    """
    context = contextvars.copy_context()

    @functools.wraps(fn)
    def bound(*args: P.args, **kwargs: P.kwargs) -> R:
        return context.copy().run(fn, *args, **kwargs)

    return bound


def _merged(stored: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    merged = {**stored, **fields}
    if "tags" in stored and "tags" in fields:
        merged["tags"] = list(dict.fromkeys([*stored["tags"], *fields["tags"]]))
    if "metadata" in stored and "metadata" in fields:
        merged["metadata"] = {**stored["metadata"], **fields["metadata"]}
    return merged


def _warn_outside() -> None:
    global _warned_outside
    if not _warned_outside:
        log.warning("ct.update_trace() called outside of a trace; ignored")
        _warned_outside = True
