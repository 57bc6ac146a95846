"""Checks of structured answers: valid JSON, a JSON Schema, the tool calls made."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
import referencing

# jsonschema ships no type hints (the package has no `py.typed`)
from jsonschema.exceptions import best_match  # type: ignore[import-untyped]
from jsonschema.validators import validator_for  # type: ignore[import-untyped]

from controltower.evals.checks_base import (
    Check,
    Loc,
    Options,
    Unscorable,
    answer_json,
    cut,
    item_expected,
    quoted,
    same_json,
)
from controltower.evals.scoring import Sample, Scorer, ScorerContext, Verdict

MAX_CACHED_SCHEMAS = 256
MAX_SCHEMA_PROBLEMS = 10

# (tool name, its arguments); arguments None: any arguments will do
ToolCall = tuple[str, dict[str, Any] | None]


# --- is-json -------------------------------------------------------------------------------


class IsJson(Check):
    """The answer is JSON (or the target returned a structured value)."""

    async def check(self, sample: Sample) -> Verdict:
        try:
            answer_json(sample)
        except ValueError as exc:
            return Verdict.of_bool(False, cut(f"not JSON ({exc}): {quoted(sample.text)}"))
        return Verdict.of_bool(True)


def is_json(config: Any, ctx: ScorerContext) -> Scorer:
    """`is-json`: the answer parses as JSON."""
    opts = Options(config, ("name",))
    check = IsJson(opts.name("is-json"))
    opts.done()
    return check


# --- json-schema ---------------------------------------------------------------------------


def schema_validator(schema: Any, at: Loc = ()) -> tuple[Any, list[tuple[Loc, str]]]:
    """A validator for `schema` (its draft read from `$schema`), or every problem of it.

    References are resolved within the schema only: nothing is fetched.
    """
    if not isinstance(schema, Mapping | bool):
        return None, [(at, f"must be a JSON Schema mapping (got {quoted(schema)}); fix: write one")]
    cls = validator_for(schema)
    meta = cls(cls.META_SCHEMA, format_checker=cls.FORMAT_CHECKER)
    problems = [
        ((*at, *error.path), f"not a valid JSON Schema: {cut(error.message, 120)}; fix: correct it")
        for error in meta.iter_errors(schema)
    ][:MAX_SCHEMA_PROBLEMS]
    if problems:
        return None, problems
    return cls(schema, registry=referencing.Registry(), format_checker=cls.FORMAT_CHECKER), []


class JsonSchema(Check):
    """The answer is JSON that the schema (the file's, or each item's `expected`) accepts."""

    def __init__(self, name: str, validator: Any) -> None:
        super().__init__(name)
        self._validator = validator
        self._cache: dict[bytes, Any] = {}

    async def check(self, sample: Sample) -> Verdict:
        validator = self._validator or self._item_validator(sample)
        try:
            value = answer_json(sample)
        except ValueError as exc:
            return Verdict.of_bool(False, cut(f"not JSON ({exc}): {quoted(sample.text)}"))
        if validator.is_valid(value):
            return Verdict.of_bool(True)
        error = best_match(validator.iter_errors(value))
        where = "/".join(str(part) for part in error.absolute_path) or "the answer"
        return Verdict.of_bool(False, cut(f"{where}: {error.message}"))

    def _item_validator(self, sample: Sample) -> Any:
        schema = item_expected(sample)
        key = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
        found = self._cache.get(key)
        if found is None:
            found, problems = schema_validator(schema)
            if found is None:
                raise Unscorable(f"the item's `expected` schema: {problems[0][1]}")
            if len(self._cache) >= MAX_CACHED_SCHEMAS:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = found
        return found


def json_schema(config: Any, ctx: ScorerContext) -> Scorer:
    """`json-schema`: the answer validates against the schema (null: each item's `expected`).

    The value is the schema itself, or `{schema: ..., name: ...}`.
    """
    if config is None:
        return JsonSchema("json-schema", None)
    wrapped = (
        isinstance(config, Mapping) and "schema" in config and set(config) <= {"schema", "name"}
    )
    opts = Options(config if wrapped else None, ("schema", "name"))
    schema, at = (config["schema"], ("schema",)) if wrapped else (config, ())
    validator, problems = schema_validator(schema, at)
    for loc, problem in problems:
        opts.add(loc, problem)
    name = opts.name("json-schema")
    opts.done()
    return JsonSchema(name, validator)


# --- tool-call -----------------------------------------------------------------------------


class ToolCalls(Check):
    """The sample made the expected tool calls: each by name, with equal or a superset of
    the expected arguments (`match: exact`: equal)."""

    def __init__(self, name: str, fixed: list[ToolCall] | None, exact: bool) -> None:
        super().__init__(name)
        self._fixed, self._exact = fixed, exact

    async def check(self, sample: Sample) -> Verdict:
        expected = self._fixed or expected_calls(item_expected(sample))
        made = [made_call(call) for call in sample.tool_calls]
        unused = list(made)
        # the most specific expectations pick first, so that a looser one does not take
        # the call a stricter one needs
        for want in sorted(expected, key=lambda call: -len(call[1] or ())):
            found = next((call for call in unused if self._matches(want, call)), None)
            if found is None:
                return Verdict.of_bool(False, cut(_missing(want, made)))
            unused.remove(found)
        return Verdict(1.0, True, details={"matched": [call[0] for call in expected]})

    def _matches(self, want: ToolCall, got: ToolCall) -> bool:
        if want[0] != got[0] or want[1] is None:
            return want[0] == got[0]
        if got[1] is None:
            return False
        return same_json(want[1], got[1]) if self._exact else is_subset(want[1], got[1])


def _missing(want: ToolCall, made: list[ToolCall]) -> str:
    seen = ", ".join(_shown_call(call) for call in made[:3]) or "no tool call"
    return f"expected {_shown_call(want)}, got {seen}"


def _shown_call(call: ToolCall) -> str:
    arguments = "..." if call[1] is None else quoted(call[1], 60)
    return f"{call[0][:40]}({arguments})"


def is_subset(want: Any, got: Any) -> bool:
    """`got` has every key of `want` (at any depth) with an equal value."""
    if isinstance(want, Mapping) and isinstance(got, Mapping):
        return all(key in got and is_subset(value, got[key]) for key, value in want.items())
    return same_json(want, got)


def _body(call: Mapping[str, Any]) -> Mapping[str, Any]:
    # OpenAI nests the call: {"type": "function", "function": {"name", "arguments"}}
    inner = call.get("function")
    return inner if isinstance(inner, Mapping) else call


def made_call(call: Any) -> ToolCall:
    """A call the sample made, in our shape or OpenAI's.

    Arguments that are not a JSON object are None: no expectation of arguments matches.
    """
    if not isinstance(call, Mapping):
        return ("", None)
    body = _body(call)
    name = body.get("name")
    return (name if isinstance(name, str) else "", _arguments(body.get("arguments")))


def _arguments(value: Any) -> dict[str, Any] | None:
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except ValueError:
            return None
    return dict(value) if isinstance(value, Mapping) else None


def expected_calls(value: Any) -> list[ToolCall]:
    """The calls an item expects: a tool name, `{name, arguments}`, or a list of them."""
    values = value if isinstance(value, list) else [value]
    if not values:
        raise Unscorable("no tool call is expected (an empty list)")
    return [_expected_call(part) for part in values]


def _expected_call(value: Any) -> ToolCall:
    if isinstance(value, str) and value:
        return (value, None)
    body = _body(value) if isinstance(value, Mapping) else {}
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise Unscorable(f"expects a tool call ({{name, arguments}}), not {quoted(value)}")
    if body.get("arguments") is None:
        return (name, None)
    arguments = _arguments(body["arguments"])
    if arguments is None:
        raise Unscorable(f"the expected arguments are not a JSON object: {quoted(value)}")
    return (name, arguments)


def tool_call(config: Any, ctx: ScorerContext) -> Scorer:
    """`tool-call`: the sample called `tool` with `arguments` (no tool: the item's `expected`)."""
    opts = Options(config, ("tool", "arguments", "match", "name"), shorthand="tool")
    tool = opts.text("tool")
    arguments = _arguments(opts.raw("arguments")) if opts.has("arguments") else None
    if opts.has("arguments") and arguments is None:
        opts.add(("arguments",), "must be a mapping or a JSON object; fix: write it as a mapping")
    if opts.has("arguments") and not opts.has("tool"):
        opts.add(("arguments",), "has no tool to go with; fix: add `tool:` with the tool's name")
    exact = opts.choice("match", ("subset", "exact"), "subset") == "exact"
    check = ToolCalls(opts.name("tool-call"), [(tool, arguments)] if tool else None, exact)
    opts.done()
    return check
