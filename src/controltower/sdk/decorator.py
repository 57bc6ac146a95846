"""`@ct.observe()`: a span around each call of a function, coroutine or generator."""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, TypeVar, overload

from controltower.sdk.binding import Binder
from controltower.sdk.live import CURRENT, LiveSpan, check_kind, open_span

F = TypeVar("F", bound=Callable[..., Any])


class _Site:
    """What one decorated function records; shared by all its calls."""

    __slots__ = ("binder", "capture_input", "capture_output", "kind", "name")

    def __init__(
        self, name: str, kind: str, binder: Binder | None, capture_input: bool, capture_output: bool
    ) -> None:
        self.name = name
        self.kind = kind
        self.binder = binder
        self.capture_input = capture_input
        self.capture_output = capture_output


@overload
def observe(fn: F, /) -> F: ...


@overload
def observe(
    *,
    name: str | None = None,
    kind: str = "span",
    capture_input: bool = True,
    capture_output: bool = True,
) -> Callable[[F], F]: ...


def observe(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    kind: str = "span",
    capture_input: bool = True,
    capture_output: bool = True,
) -> Any:
    """Record a span for every call: its arguments, result or exception, and timing.

    Works on functions, methods, coroutines and (async) generators, where the span
    covers the whole iteration and the output is the yielded items. Exceptions mark the
    span as an error and are re-raised untouched.
    """

    check_kind(kind)

    def decorate(target: Any) -> Any:
        if isinstance(target, staticmethod | classmethod):
            return type(target)(decorate(target.__func__))
        site = _Site(
            name or getattr(target, "__qualname__", None) or repr(target),
            kind,
            Binder.of(target) if capture_input else None,
            capture_input,
            capture_output,
        )
        if inspect.isasyncgenfunction(target):
            return _async_generator(target, site)
        if inspect.isgeneratorfunction(target):
            return _generator(target, site)
        if inspect.iscoroutinefunction(target):
            return _coroutine(target, site)
        return _function(target, site)

    return decorate if fn is None else decorate(fn)


def _function(fn: Callable[..., Any], site: _Site) -> Callable[..., Any]:
    @functools.wraps(fn)
    def observed(*args: Any, **kwargs: Any) -> Any:
        span = open_span(site.name, site.kind)
        if span is None:
            return fn(*args, **kwargs)
        if site.capture_input:
            span.args = args
            span.kwargs = kwargs
            span.binder = site.binder
        token = CURRENT.set(span)
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            CURRENT.reset(token)
            span.fail(exc)
            raise
        CURRENT.reset(token)
        if site.capture_output and span.output is None:  # an explicit update() wins
            span.output = result
        span.end()
        return result

    return observed


def _coroutine(fn: Callable[..., Any], site: _Site) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def observed(*args: Any, **kwargs: Any) -> Any:
        span = open_span(site.name, site.kind)
        if span is None:
            return await fn(*args, **kwargs)
        if site.capture_input:
            span.args = args
            span.kwargs = kwargs
            span.binder = site.binder
        token = CURRENT.set(span)
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            CURRENT.reset(token)
            span.fail(exc)
            raise
        CURRENT.reset(token)
        if site.capture_output and span.output is None:  # an explicit update() wins
            span.output = result
        span.end()
        return result

    return observed


def _generator(fn: Callable[..., Any], site: _Site) -> Callable[..., Any]:
    @functools.wraps(fn)
    def observed(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        span = open_span(site.name, site.kind)
        if span is None:
            return (yield from fn(*args, **kwargs))
        _start_iteration(span, site, args, kwargs)
        return (yield from _drive(fn(*args, **kwargs), span))

    return observed


def _async_generator(fn: Callable[..., Any], site: _Site) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def observed(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        span = open_span(site.name, site.kind)
        if span is not None:
            _start_iteration(span, site, args, kwargs)
        # no `yield from` in async generators: relay asend/athrow by hand
        inner = fn(*args, **kwargs)
        sent: Any = None
        thrown: BaseException | None = None
        while True:
            token = None if span is None else CURRENT.set(span)
            try:
                item = await (inner.asend(sent) if thrown is None else inner.athrow(thrown))
            except StopAsyncIteration:
                _leave(token, span, None)
                return
            except BaseException as exc:
                _leave(token, span, exc)
                raise
            _leave(token, span, False)
            if span is not None:
                span.keep(item)
            sent, thrown = None, None
            try:
                sent = yield item
            except GeneratorExit:
                await _aclose(inner, span)
                raise
            except BaseException as exc:
                thrown = exc

    return observed


def _leave(token: Any, span: LiveSpan | None, outcome: BaseException | bool | None) -> None:
    """Reset the current span after a step; end it on None, fail it on an exception."""
    if span is None:
        return
    CURRENT.reset(token)
    if outcome is None:
        span.end()
    elif isinstance(outcome, BaseException):
        span.fail(outcome)


def _start_iteration(span: LiveSpan, site: _Site, args: Any, kwargs: Any) -> None:
    if site.capture_input:
        span.args = args
        span.kwargs = kwargs
        span.binder = site.binder
    if site.capture_output:
        span.items = []


def _drive(inner: Generator[Any, Any, Any], span: LiveSpan) -> Generator[Any, Any, Any]:
    """Run each step of `inner` with `span` current, and only while that step runs.

    Setting the context variable across a `yield` would leak the span into the consumer's
    code between items, so it is set and reset around every step.
    """
    sent: Any = None
    thrown: BaseException | None = None
    while True:
        token = CURRENT.set(span)
        try:
            item = inner.send(sent) if thrown is None else inner.throw(thrown)
        except StopIteration as stop:
            CURRENT.reset(token)
            span.end()
            return stop.value
        except BaseException as exc:
            CURRENT.reset(token)
            span.fail(exc)
            raise
        CURRENT.reset(token)
        span.keep(item)
        sent, thrown = None, None
        try:
            sent = yield item
        except GeneratorExit:
            _close(inner, span)
            raise
        except BaseException as exc:
            thrown = exc


def _close(inner: Generator[Any, Any, Any], span: LiveSpan) -> None:
    token = CURRENT.set(span)
    try:
        inner.close()
    except BaseException as exc:
        _leave(token, span, exc)
        raise
    _leave(token, span, None)


async def _aclose(inner: AsyncGenerator[Any, Any], span: LiveSpan | None) -> None:
    token = None if span is None else CURRENT.set(span)
    try:
        await inner.aclose()
    except BaseException as exc:
        _leave(token, span, exc)
        raise
    _leave(token, span, None)
