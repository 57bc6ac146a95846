"""What answers an eval's items: a prompt or a model alias through the gateway, a Python
callable of the user's application, or an HTTP endpoint of it.

Model calls go through the `ModelClient` (the gateway's code path, so they are traced);
an HTTP endpoint through an `HttpCaller` that the gateway implements.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from controltower.domain.dataset import DatasetItem
from controltower.errors import APIError, RateLimited
from controltower.evals.scoring import ModelClient, ModelReply, Sample
from controltower.evals.spec import TargetSpec
from controltower.evals.templating import SampleTemplate, SampleTemplates, sample_values

_ONE_NAME = re.compile(r"\{\{-?\s*([A-Za-z_][A-Za-z0-9_]*)\s*-?\}\}")


class TargetError(Exception):
    """The target could not answer an item (not a rate limit: those are retried)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A target's answer to one item."""

    output: Any
    text: str
    tool_calls: tuple[dict[str, Any], ...] = ()
    trace_id: str | None = None
    latency_ms: float | None = None
    cost_usd: float | None = None
    contexts: tuple[str, ...] = ()
    route: dict[str, Any] = field(default_factory=dict)


class Target(Protocol):
    """Answers one item (one repeat of it)."""

    async def answer(self, item: DatasetItem, repeat: int) -> Answer:
        """The answer; APIError (a 429 included) or TargetError when there is none."""
        ...


class HttpCaller(Protocol):
    """POSTs (or GETs) JSON to an URL; (status, parsed JSON answer or text).

    It may raise `RateLimited` itself for a 429 or 503 (with the answer's Retry-After),
    and `TargetError` when the endpoint cannot be reached or does not answer in time.
    """

    async def call(
        self, method: str, url: str, body: Any, headers: dict[str, str], timeout_s: float
    ) -> tuple[int, Any]:
        """The answer's status and body."""
        ...


def sample_of(item: DatasetItem, repeat: int = 0) -> Sample:
    """A sample with no answer yet: what target templates render with."""
    return Sample(item, None, "", repeat, input_text=input_text(item))


def input_text(item: DatasetItem) -> str:
    """The item's question as text: its input, its last user message, or its variables."""
    value = item.input
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        for message in reversed(value):
            if isinstance(message, dict) and message.get("role") == "user":
                content = message.get("content")
                return content if isinstance(content, str) else orjson.dumps(content).decode()
    if value is None and item.variables:
        return orjson.dumps(item.variables).decode()
    return "" if value is None else orjson.dumps(value, default=str).decode()


def answer_of(reply: ModelReply, contexts: tuple[str, ...] = ()) -> Answer:
    """A model's reply as an answer: its text, its tool calls with parsed arguments."""
    calls = []
    for call in reply.message.get("tool_calls") or ():
        function = call.get("function") or {}
        arguments = function.get("arguments")
        try:
            parsed = orjson.loads(arguments) if isinstance(arguments, str) else arguments
        except orjson.JSONDecodeError:
            parsed = arguments
        calls.append({"name": function.get("name"), "arguments": parsed})
    return Answer(
        reply.content,
        reply.content,
        tuple(calls),
        reply.trace_id,
        reply.latency_ms,
        reply.cost_usd,
        contexts,
        reply.route,
    )


def _contexts(item: DatasetItem) -> tuple[str, ...]:
    found = item.metadata.get("contexts") or item.metadata.get("context") or ()
    if isinstance(found, str):
        return (found,)
    return tuple(str(c) for c in found) if isinstance(found, list) else ()


class ModelTarget:
    """A model alias with message templates, or a prompt of the registry, via the gateway."""

    def __init__(
        self,
        spec: TargetSpec,
        client: ModelClient,
        templates: SampleTemplates,
        tags: list[str],
        metadata: dict[str, Any],
    ) -> None:
        self.spec = spec
        self.client = client
        self.tags = tags
        self.metadata = metadata
        self._messages = [(m, templates.compile(m["content"])) for m in spec.messages]

    async def answer(self, item: DatasetItem, repeat: int) -> Answer:
        """The gateway's answer to the item."""
        body = self._body(item, repeat)
        meta = {**self.metadata, "item_id": item.id, "repeat": repeat}
        override = self.spec.model if self.spec.kind == "prompt" else None
        reply = await self.client.chat(body, tags=self.tags, metadata=meta, model=override)
        return answer_of(reply, _contexts(item))

    def _body(self, item: DatasetItem, repeat: int) -> dict[str, Any]:
        sample = sample_of(item, repeat)
        messages = [{**m, "content": render(sample)} for m, render in self._messages]
        body: dict[str, Any] = {**self.spec.params}
        if self.spec.kind == "prompt":
            body["model"] = f"prompt:{self.spec.prompt}"
            body["variables"] = dict(item.variables) or {"input": item.input}
            extra = item.input if isinstance(item.input, list) else []
            if messages or extra:
                body["messages"] = [*messages, *extra]
            return body
        if isinstance(item.input, list) and not messages:
            messages = list(item.input)
        body["model"] = self.spec.model
        body["messages"] = messages
        return body


class PythonTarget:
    """A callable of the user's application, `package.module:function`, sync or async.

    It is called with the item's variables as keyword arguments when the item has
    variables and no input, else with the input. It may return text, a JSON value, or a
    mapping with `output` (and optionally `contexts`, `tool_calls`, `trace_id`).
    """

    def __init__(self, reference: str, function: Callable[..., Any] | None = None) -> None:
        self.function = as_async(function) if function is not None else load_callable(reference)

    async def answer(self, item: DatasetItem, repeat: int) -> Answer:
        """What the callable returns for the item."""
        started = time.perf_counter()
        try:
            if item.variables and item.input is None:
                result = self.function(**item.variables)
            else:
                result = self.function(item.input)
            if inspect.isawaitable(result):
                result = await result
        except APIError:
            raise
        except Exception as exc:
            raise TargetError(f"{type(exc).__name__}: {exc}") from exc
        latency = (time.perf_counter() - started) * 1000
        return _answer_from_value(result, latency, _contexts(item))


def load_callable(reference: str) -> Callable[..., Any]:
    """The function `package.module:function` names; TargetError saying what failed."""
    module_name, _, attribute = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise TargetError(f"cannot import {module_name!r}: {exc}") from exc
    found: Any = module
    for part in attribute.split("."):
        found = getattr(found, part, None)
        if found is None:
            raise TargetError(f"{module_name!r} has no {attribute!r}")
    if not callable(found):
        raise TargetError(f"{reference!r} is not callable")
    return as_async(found)


def as_async(function: Callable[..., Any]) -> Callable[..., Any]:
    """The callable itself when it is async, else one that calls it in a worker thread."""
    if inspect.iscoroutinefunction(function):
        return function

    async def in_thread(*args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(function, *args, **kwargs)

    return in_thread


def _answer_from_value(value: Any, latency_ms: float, contexts: tuple[str, ...]) -> Answer:
    if isinstance(value, dict) and "output" in value:
        output = value["output"]
        found = value.get("contexts")
        if isinstance(found, list):
            contexts = tuple(str(c) for c in found)
        calls = value.get("tool_calls")
        trace = value.get("trace_id")
        return Answer(
            output,
            _as_text(output),
            tuple(calls) if isinstance(calls, list) else (),
            trace if isinstance(trace, str) else None,
            latency_ms,
            contexts=contexts,
        )
    return Answer(value, _as_text(value), latency_ms=latency_ms, contexts=contexts)


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return orjson.dumps(value, default=str).decode()


class HttpTarget:
    """An endpoint of the user's application: a JSON body built from templates per item."""

    def __init__(
        self, spec: TargetSpec, caller: HttpCaller, templates: SampleTemplates, timeout_s: float
    ) -> None:
        http = spec.http
        self.url: str = http["url"]
        self.method = str(http.get("method", "POST")).upper()
        self.headers: dict[str, str] = dict(http.get("headers") or {})
        self.output_path = [p for p in str(http.get("output") or "").split(".") if p]
        self.caller = caller
        self.timeout_s = timeout_s
        self._body = _compile_tree(http.get("body", {"input": "{{ input }}"}), templates)

    async def answer(self, item: DatasetItem, repeat: int) -> Answer:
        """The endpoint's answer (the value at `output`, when given)."""
        sample = sample_of(item, repeat)
        body = self._body(sample)
        started = time.perf_counter()
        status, data = await self.caller.call(
            self.method, self.url, body, self.headers, self.timeout_s
        )
        latency = (time.perf_counter() - started) * 1000
        if status in (429, 503):  # the runner backs off, as from the gateway's 429s
            raise RateLimited(f"{self.url} answered {status}")
        if status >= 400:
            raise TargetError(f"{self.url} answered {status}: {_as_text(data)[:200]}")
        return _answer_from_value({"output": _at(data, self.output_path)}, latency, _contexts(item))


def _at(data: Any, path: list[str]) -> Any:
    for part in path:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            raise TargetError(f"the answer has no `{'.'.join(path)}`")
    return data


def _compile_tree(value: Any, templates: SampleTemplates) -> Callable[[Sample], Any]:
    """A JSON body whose strings are templates, rendered per sample; a string that is only
    `{{ name }}` of a list, mapping, number or boolean (`{{ vars }}`, an input of messages)
    is that value, not its text."""
    if isinstance(value, str):
        render = templates.compile(value)
        one = _ONE_NAME.fullmatch(value.strip())
        if one is None:
            return render
        name = one.group(1)

        def value_of(sample: Sample) -> Any:
            found = sample_values(sample).get(name)
            return found if isinstance(found, dict | list | int | float) else render(sample)

        return value_of
    if isinstance(value, dict):
        parts = {k: _compile_tree(v, templates) for k, v in value.items()}
        return lambda s: {k: f(s) for k, f in parts.items()}
    if isinstance(value, list):
        items = [_compile_tree(v, templates) for v in value]
        return lambda s: [f(s) for f in items]
    return lambda _s: value


def build_target(
    spec: TargetSpec,
    client: ModelClient,
    templates: SampleTemplates,
    *,
    http: HttpCaller | None,
    timeout_s: float,
    tags: list[str],
    metadata: dict[str, Any],
) -> Target:
    """The target an eval file's `target:` describes."""
    if spec.kind == "python":
        return PythonTarget(spec.python or "", spec.function)
    if spec.kind == "http":
        if http is None:
            raise TargetError("this runtime has no HTTP client for an http target")
        return HttpTarget(spec, http, templates, timeout_s)
    return ModelTarget(spec, client, templates, tags, metadata)


__all__ = [
    "Answer",
    "HttpCaller",
    "HttpTarget",
    "ModelTarget",
    "PythonTarget",
    "SampleTemplate",
    "Target",
    "TargetError",
    "as_async",
    "build_target",
    "input_text",
    "load_callable",
]
