"""`ct.wrap_openai(client)`: generation and embedding spans around one client's calls.

Only the given client is changed (its `chat.completions.create` and `embeddings.create`
are replaced on that client's resource objects); the openai module is left alone.
Each call sends the W3C `traceparent` of its own span, so a call that goes through the
controltower gateway continues this trace under this span.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from controltower.sdk.live import LiveSpan, open_span
from controltower.sdk.openai_stream import AsyncTracedStream, TracedStream, openai_usage

C = TypeVar("C")

_MARK = "_controltower_traced"
_PARAMETERS = (
    "temperature", "top_p", "max_tokens", "max_completion_tokens", "frequency_penalty",
    "presence_penalty", "stop", "seed", "n", "logprobs", "top_logprobs", "logit_bias",
    "response_format", "tools", "tool_choice", "parallel_tool_calls", "reasoning_effort",
    "stream", "stream_options", "service_tier", "user", "modalities", "verbosity",
    "dimensions", "encoding_format",
)  # fmt: skip


def wrap_openai(client: C) -> C:
    """Trace `chat.completions.create` and `embeddings.create` of an OpenAI client.

    Works with `openai.OpenAI` and `openai.AsyncOpenAI` (and their Azure forms);
    streaming included. Returns the same client.
    """
    import openai

    is_async = isinstance(client, openai.AsyncOpenAI)
    if not is_async and not isinstance(client, openai.OpenAI):
        raise TypeError(f"wrap_openai takes an openai.OpenAI or AsyncOpenAI, not {type(client)}")
    traced: Any = client
    targets = (
        (traced.chat.completions, "openai.chat.completions", "generation"),
        (traced.embeddings, "openai.embeddings", "embedding"),
    )
    for resource, name, kind in targets:
        if getattr(resource, _MARK, False):
            continue
        make = _traced_async if is_async else _traced_sync
        # an attribute on this client's resource object shadows the class's method
        resource.create = make(resource.create, name, kind)
        setattr(resource, _MARK, True)
    return client


def _traced_sync(create: Callable[..., Any], name: str, kind: str) -> Callable[..., Any]:
    import openai

    @functools.wraps(create)
    def traced(*args: Any, **kwargs: Any) -> Any:
        span = _open(name, kind, kwargs)
        if span is None:
            return create(*args, **kwargs)
        try:
            result = create(*args, **kwargs)
        except BaseException as exc:
            span.fail(exc)
            raise
        if isinstance(result, openai.Stream):
            return TracedStream(result, span)
        _record_response(span, result)
        return result

    return traced


def _traced_async(create: Callable[..., Any], name: str, kind: str) -> Callable[..., Any]:
    import openai

    @functools.wraps(create)
    async def traced(*args: Any, **kwargs: Any) -> Any:
        span = _open(name, kind, kwargs)
        if span is None:
            return await create(*args, **kwargs)
        try:
            result = await create(*args, **kwargs)
        except BaseException as exc:
            span.fail(exc)
            raise
        if isinstance(result, openai.AsyncStream):
            return AsyncTracedStream(result, span)
        _record_response(span, result)
        return result

    return traced


def _open(name: str, kind: str, kwargs: dict[str, Any]) -> LiveSpan | None:
    """The call's span with its request recorded, and `traceparent` added to kwargs."""
    span = open_span(name, kind)
    if span is None or not span.sampled:
        return None  # an unsampled trace: the gateway traces the call on its own
    span.provider = "openai"
    model = kwargs.get("model")
    if isinstance(model, str):
        span.model = model
    span.input = kwargs.get("messages") if kind == "generation" else kwargs.get("input")
    parameters = {key: kwargs[key] for key in _PARAMETERS if key in kwargs and _given(kwargs[key])}
    if parameters:
        span.parameters = parameters
    headers = dict(kwargs.get("extra_headers") or {})
    if not any(key.lower() == "traceparent" for key in headers):  # the caller's wins
        headers["traceparent"] = span.traceparent
    kwargs["extra_headers"] = headers
    return span


def _given(value: Any) -> bool:
    # the client's "not given" sentinels (NotGiven, Omit) are not parameters
    return value is not None and type(value).__name__ not in ("NotGiven", "Omit")


def _record_response(span: LiveSpan, result: Any) -> None:
    model = getattr(result, "model", None)
    if isinstance(model, str) and model:
        span.model = model
    span.usage = openai_usage(getattr(result, "usage", None))
    if span.kind == "embedding":
        span.output = _embedding_summary(result)
    else:
        choices = getattr(result, "choices", None) or []
        messages = [_message(choice) for choice in choices]
        span.output = messages[0] if len(messages) == 1 else messages
        reasons = [c.finish_reason for c in choices if getattr(c, "finish_reason", None)]
        if reasons:
            span.metadata = {"finish_reason": reasons[0] if len(reasons) == 1 else reasons}
    span.end()


def _message(choice: Any) -> Any:
    message = getattr(choice, "message", None)
    dump = getattr(message, "model_dump", None)
    return dump(mode="json", exclude_none=True) if callable(dump) else message


def _embedding_summary(result: Any) -> dict[str, Any]:
    # the vectors themselves are large and say little to a reader: count and size
    data = getattr(result, "data", None) or []
    first = getattr(data[0], "embedding", None) if data else None
    return {"embeddings": len(data), "dimensions": len(first) if first is not None else None}
