"""The `target:` of an eval file: what answers each item, checked with every problem."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from controltower.evals.spec_problems import Loc, Problems, unknown
from controltower.evals.templating import SampleTemplates, TemplateProblem

TargetKind = Literal["prompt", "model", "python", "http"]
TARGET_KINDS: tuple[TargetKind, ...] = ("prompt", "model", "python", "http")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")  # as in config files


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """What answers each item: a prompt, a model alias with messages, a callable, or an URL."""

    kind: TargetKind
    prompt: str | None = None  # "name@label", "name#3" or "name"
    model: str | None = None
    messages: tuple[dict[str, Any], ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    python: str | None = None
    http: dict[str, Any] = field(default_factory=dict)
    # a callable given from Python (`target: {python: fn}`); `python` then holds its name
    function: Callable[..., Any] | None = field(default=None, compare=False)

    def describe(self) -> dict[str, Any]:
        """The target as the run's record keeps it."""
        out: dict[str, Any] = {"kind": self.kind}
        for key in ("prompt", "model", "python"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.messages:
            out["messages"] = list(self.messages)
        if self.params:
            out["params"] = self.params
        if self.http:
            out["http"] = {k: v for k, v in self.http.items() if k != "headers"}
        return out


def parse_target(value: Any, found: Problems) -> TargetSpec:
    """The target of an eval file (a placeholder when it has problems, all added to `found`)."""
    loc: Loc = ("target",)
    if value is None:
        return TargetSpec("model", model="?")
    if not isinstance(value, dict):
        found.add(
            loc,
            "must be a mapping with one of prompt, model, python or http; fix: "
            "e.g. `target: {prompt: refund-policy@production}`",
        )
        return TargetSpec("model", model="?")
    kinds = [k for k in TARGET_KINDS if k in value]
    allowed = (*TARGET_KINDS, "messages", "params")
    for key in value:
        if key not in allowed:
            found.add((*loc, str(key)), unknown(str(key), allowed))
    if len(kinds) != 1:
        said = "names none" if not kinds else f"names {', '.join(kinds)}"
        found.add(loc, f"{said}; fix: give exactly one of prompt, model, python or http")
        return TargetSpec("model", model="?")
    return _target_of(kinds[0], value, loc, found)


def _target_of(kind: TargetKind, value: dict[str, Any], loc: Loc, found: Problems) -> TargetSpec:
    params = value.get("params") or {}
    if not isinstance(params, dict):
        found.add(
            (*loc, "params"),
            "must be a mapping of model parameters; fix: e.g. `params: {temperature: 0}`",
        )
        params = {}
    messages = _messages(value.get("messages"), (*loc, "messages"), found)
    if kind == "model" and not messages:
        found.add(
            (*loc, "messages"),
            "a model target needs messages; fix: add `messages: "
            '[{role: user, content: "{{ input }}"}]`',
        )
    if kind != "model" and messages and kind != "prompt":
        found.add(
            (*loc, "messages"), f"is for model and prompt targets, not {kind}; fix: remove it"
        )
    main = value[kind]
    if kind == "python" and callable(main):
        return TargetSpec(kind, params=params, python=_name_of(main), function=main)
    if kind == "http":
        return TargetSpec(kind, params=params, http=_http(main, (*loc, "http"), found))
    if not isinstance(main, str) or not main.strip():
        found.add(
            (*loc, kind), f"must be a non-empty string (got {main!r}); fix: " + _TARGET_FIXES[kind]
        )
        main = "?"
    elif kind == "python" and ":" not in main:
        found.add((*loc, kind), f"{main!r} names no function; fix: write `module:function`")
    ref = main.removeprefix("prompt:")
    return TargetSpec(
        kind,
        prompt=ref if kind == "prompt" else None,
        model=main if kind == "model" else None,
        messages=tuple(messages),
        params=params,
        python=main if kind == "python" else None,
    )


def _name_of(function: Callable[..., Any]) -> str:
    """`module:qualname` of a callable, what the run's record keeps of it."""
    module = getattr(function, "__module__", None) or "<python>"
    name = getattr(function, "__qualname__", None) or type(function).__qualname__
    return f"{module}:{name}"


_TARGET_FIXES = {
    "prompt": "write the prompt and its label or version, e.g. `refund-policy@production`",
    "model": "write a model alias of your gateway config, e.g. `fast`",
    "python": "write `package.module:function`",
}


def _messages(value: Any, loc: Loc, found: Problems) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        found.add(loc, "must be a list of {role, content}; fix: write a YAML list")
        return []
    out = []
    for i, message in enumerate(value):
        ok = (
            isinstance(message, dict)
            and message.get("role") in ("system", "user", "assistant", "developer")
            and isinstance(message.get("content"), str)
        )
        if not ok:
            found.add(
                (*loc, i), "must be {role: system|user|assistant, content: text}; fix: give both"
            )
            continue
        out.append(message)
    return out


def _http(value: Any, loc: Loc, found: Problems) -> dict[str, Any]:
    if isinstance(value, str):
        value = {"url": value}
    if not isinstance(value, dict):
        found.add(
            loc,
            "must be a mapping with `url`; fix: e.g. `http: {url: "
            'http://127.0.0.1:8000/answer, body: {question: "{{ input }}"}}`',
        )
        return {}
    allowed = ("url", "method", "headers", "body", "output")
    for key in value:
        if key not in allowed:
            found.add((*loc, str(key)), unknown(str(key), allowed))
    url = value.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        found.add(
            (*loc, "url"), "must be an http:// or https:// URL; fix: write the endpoint's URL"
        )
    method = value.get("method", "POST")
    if not isinstance(method, str) or method.upper() not in HTTP_METHODS:
        found.add(
            (*loc, "method"),
            f"must be one of {', '.join(HTTP_METHODS)} (got {method!r}); fix: use one",
        )
    _check_body(value.get("body"), (*loc, "body"), found)
    out = dict(value)
    out["headers"] = _headers(value.get("headers") or {}, (*loc, "headers"), found)
    output = value.get("output")
    if output is not None and not isinstance(output, str):
        found.add(
            (*loc, "output"),
            "must be a dotted path in the JSON answer; fix: e.g. `output: answer.text`",
        )
    return out


def _headers(value: Any, loc: Loc, found: Problems) -> dict[str, str]:
    """The headers, with `${NAME}` (or `${NAME:-default}`) read from the environment."""
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        found.add(loc, "must map header names to strings; fix: quote values")
        return {}
    out = {}
    for name, text in value.items():
        at: Loc = (*loc, name)
        expanded = _ENV_REF.sub(functools.partial(_env, loc=at, found=found), text)
        if any(c in f"{name}{expanded}" for c in "\r\n\0"):
            found.add((*loc, name), "holds a line break; fix: write the header on one line")
        out[name] = expanded
    return out


def _env(match: re.Match[str], *, loc: Loc, found: Problems) -> str:
    name, default = match.group(1), match.group(2)
    if name in os.environ:
        return os.environ[name]
    if default is not None:
        return default
    found.add(
        loc,
        f"environment variable {name} is not set; fix: export {name}=... before the run, "
        f"or write ${{{name}:-default}}",
    )
    return ""


def _check_body(value: Any, loc: Loc, found: Problems) -> None:
    """Every template of the body compiles (so a typo is found before any call)."""
    if isinstance(value, str):
        try:
            SampleTemplates().compile(value)
        except TemplateProblem as exc:
            found.add(loc, f"{exc}; fix: correct the template")
    elif isinstance(value, dict):
        for key, inner in value.items():
            _check_body(inner, (*loc, str(key)), found)
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            _check_body(inner, (*loc, i), found)
