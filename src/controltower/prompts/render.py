"""Render a version's template in a Jinja2 sandbox, after checking its variables.

A render has limits (time, output, the size of values: see sandbox.py). On the server,
`render_async` runs it in a small pool of threads, so that a slow template never holds
up the event loop, and answers once the time limit is up even if the template has not
stopped yet.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from jinja2 import Template, TemplateError, TemplateSyntaxError, meta
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from controltower.domain.prompt import PromptContent, PromptVersion, VariableSpec
from controltower.prompts.errors import PromptRenderError
from controltower.prompts.sandbox import LimitedSandbox, RenderBudget, RenderLimits

# Each check is a predicate and the phrase an error names the type with.
_TYPES: dict[str, tuple[type | tuple[type, ...], str]] = {
    "string": (str, "a string"),
    "number": ((int, float), "a number"),
    "integer": (int, "an integer"),
    "boolean": (bool, "a boolean (true or false)"),
    "array": ((list, tuple), "an array (a list)"),
    "object": (dict, "an object (a mapping)"),
}
MAX_CACHED = 4096
RENDER_WORKERS = 2
# how long past the time limit `render_async` waits for a template that does not stop
# (one stuck in a single long operation the sandbox cannot interrupt)
WAIT_GRACE_S = 0.25


def template_environment() -> LimitedSandbox:
    """The sandbox every template compiles in: no unsafe attributes, no mutation, limits."""
    return LimitedSandbox()


def referenced_variables(env: ImmutableSandboxedEnvironment, source: str) -> set[str]:
    """The names a template reads from its context (loops, `set` and globals excluded)."""
    return set(meta.find_undeclared_variables(env.parse(source))) - set(env.globals)


@dataclass(frozen=True, slots=True)
class RenderedPrompt:
    """A rendered version: chat messages or text, and the model and parameters to call with."""

    name: str
    version: int
    messages: tuple[dict[str, Any], ...] | None
    text: str | None
    model: str | None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Compiled:
    templates: tuple[Template, ...]
    referenced: frozenset[str]


class PromptRenderer:
    """Renders versions, compiling each version's templates once and keeping them."""

    def __init__(self, limits: RenderLimits | None = None, workers: int = RENDER_WORKERS) -> None:
        self.limits = limits or RenderLimits()
        self._env = LimitedSandbox(self.limits)
        self._compiled: dict[tuple[str, int, str], _Compiled] = {}
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None

    def render(self, version: PromptVersion, variables: Mapping[str, Any]) -> RenderedPrompt:
        """Check the variables against the schema, then render; PromptRenderError if not.

        Renders in the calling thread (RenderLimitExceeded past a limit).
        """
        budget = RenderBudget(self.limits)
        budget.start()
        return self._render(budget, version, variables)

    async def render_async(
        self, version: PromptVersion, variables: Mapping[str, Any]
    ) -> RenderedPrompt:
        """`render` in the renderer's threads; RenderLimitExceeded once the time is up."""
        budget = RenderBudget(self.limits)
        loop = asyncio.get_running_loop()
        work = loop.run_in_executor(self._executor(), self._started, budget, version, variables)
        try:
            # a wait for a thread of up to one time limit, then the render's own
            async with asyncio.timeout(2 * self.limits.time_s + WAIT_GRACE_S):
                return await work
        except TimeoutError:
            raise budget.too_slow() from None
        finally:
            budget.stop()  # a render nobody waits for stops at its next check

    def close(self) -> None:
        """Stop the threads (renders under way stop at their next check)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="controltower-render")
        return self._pool

    def _started(
        self, budget: RenderBudget, version: PromptVersion, variables: Mapping[str, Any]
    ) -> RenderedPrompt:
        if budget.stopped:  # nobody waits for it any more
            raise budget.too_slow()
        budget.start()
        return self._render(budget, version, variables)

    def _render(
        self, budget: RenderBudget, version: PromptVersion, variables: Mapping[str, Any]
    ) -> RenderedPrompt:
        with self._env.spending(budget):
            compiled = self._compile(version)
            values = check_variables(version.content, variables, compiled.referenced)
            content = version.content
            if content.text is not None:
                text = _run(compiled.templates[0], values, "text", budget)
                return RenderedPrompt(
                    version.name, version.version, None, text, content.model, dict(content.params)
                )
            messages = []
            for i, (message, template) in enumerate(
                zip(content.messages or (), compiled.templates, strict=True)
            ):
                rendered = _run(template, values, f"messages[{i}].content", budget)
                messages.append({**message, "content": rendered})
        return RenderedPrompt(
            version.name,
            version.version,
            tuple(messages),
            None,
            content.model,
            dict(content.params),
        )

    def _compile(self, version: PromptVersion) -> _Compiled:
        # The hash is in the key so that a store rebuilt under the same numbers cannot
        # serve a stale template.
        key = (version.name, version.version, version.content_hash)
        found = self._compiled.get(key)
        if found is not None:
            return found
        if len(self._compiled) >= MAX_CACHED:
            self._compiled.clear()
        sources = _sources(version.content)
        templates, referenced = [], set()
        for where, source in sources:
            try:
                templates.append(self._env.compile_template(source))
                referenced |= referenced_variables(self._env, source)
            except TemplateSyntaxError as exc:
                raise PromptRenderError(
                    f"{where}: template syntax error on line {exc.lineno}: {exc.message}"
                ) from None
        compiled = _Compiled(tuple(templates), frozenset(referenced))
        self._compiled[key] = compiled
        return compiled


def render(version: PromptVersion, variables: Mapping[str, Any]) -> RenderedPrompt:
    """Render once (keep a PromptRenderer to reuse compiled templates across calls)."""
    return PromptRenderer().render(version, variables)


def _sources(content: PromptContent) -> list[tuple[str, str]]:
    if content.text is not None:
        return [("text", content.text)]
    return [
        (f"messages[{i}].content", str(m.get("content", "")))
        for i, m in enumerate(content.messages or ())
    ]


def _run(template: Template, values: dict[str, Any], where: str, budget: RenderBudget) -> str:
    try:
        text = template.render(values)
    except PromptRenderError as exc:  # a limit: the sandbox says which
        raise type(exc)(f"{where}: {exc.message}", param=exc.param) from None
    except SecurityError as exc:
        raise PromptRenderError(
            f"{where}: the template was refused by the sandbox ({exc}); templates may read "
            "variables, not reach into Python objects"
        ) from None
    except UndefinedError as exc:
        raise PromptRenderError(f"{where}: {exc.message}") from None
    except TemplateError as exc:
        raise PromptRenderError(f"{where}: template error: {exc}") from None
    except Exception as exc:  # an operation in the template failed (1/0, "a" + 1 …)
        raise PromptRenderError(f"{where}: rendering failed: {type(exc).__name__}: {exc}") from None
    budget.add_output(len(text))
    return text


def check_variables(
    content: PromptContent, variables: Mapping[str, Any], referenced: frozenset[str] | set[str]
) -> dict[str, Any]:
    """The values to render with: checked against the schema, defaults applied.

    With an empty schema, every name the template reads is required (of any type).
    A variable the schema (or, without one, the template) does not know is an error.
    """
    schema = content.variables
    known = schema.keys() if schema else referenced
    unknown = sorted(set(variables) - set(known))
    if unknown:
        names = ", ".join(f"`{n}`" for n in unknown)
        allowed = ", ".join(f"`{n}`" for n in sorted(known)) or "none"
        raise PromptRenderError(
            f"unknown variable {names}; this prompt takes: {allowed}", param="variables"
        )
    if not schema:
        missing = sorted(set(referenced) - set(variables))
        if missing:
            raise PromptRenderError(f"variable `{missing[0]}` is required", param="variables")
        return dict(variables)
    return {name: _value(name, spec, variables) for name, spec in schema.items()}


def _value(name: str, spec: VariableSpec, variables: Mapping[str, Any]) -> Any:
    if name not in variables or variables[name] is None:
        if spec.default is not None:
            return spec.default
        if spec.required:
            raise PromptRenderError(f"variable `{name}` is required", param="variables")
        return None
    value = variables[name]
    check_value(name, spec, value)
    return value


def check_value(name: str, spec: VariableSpec, value: Any) -> None:
    """PromptRenderError naming the variable when a value has the wrong type or enum."""
    kinds, phrase = _TYPES[spec.type]
    # bool is an int in Python, but true is not a number in a prompt's schema
    wrong_bool = isinstance(value, bool) and spec.type != "boolean"
    if wrong_bool or not isinstance(value, kinds):
        raise PromptRenderError(
            f"variable `{name}` must be {phrase}, got {type(value).__name__} {value!r}",
            param="variables",
        )
    if spec.enum is not None and value not in spec.enum:
        allowed = ", ".join(repr(v) for v in spec.enum)
        raise PromptRenderError(
            f"variable `{name}` must be one of {allowed}, got {value!r}", param="variables"
        )
