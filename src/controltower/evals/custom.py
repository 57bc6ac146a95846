"""Scorers the eval file brings: a Python function by its import path, and the negation of
any other scorer."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
import numbers
import re
from collections.abc import Callable, Mapping
from typing import Any, cast

import numpy as np

from controltower.evals.checks_base import Check, Options, Unscorable, cut, entry_name, quoted
from controltower.evals.scoring import (
    Sample,
    ScoreKind,
    Scorer,
    ScorerConfigError,
    ScorerContext,
    Verdict,
)

# builds one scorer from one eval-file entry (`{contains: "x"}`), raising ScorerConfigError
# with problems relative to that entry
ScorerBuilder = Callable[[Any, ScorerContext], Scorer]

_REFERENCE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
_RESULT_KEYS = ("value", "pass", "reason")
_RESULTS = "a bool, a number, a Verdict or a dict with value, pass and reason"


# --- python --------------------------------------------------------------------------------


class PythonFunction(Check):
    """Calls `function(sample)` (sync or async) and reads its result as a verdict."""

    waits = True

    def __init__(
        self, name: str, function: Callable[[Sample], Any], kind: ScoreKind, threshold: float | None
    ) -> None:
        super().__init__(name)
        self.kind = kind
        self._function, self._threshold = function, threshold

    async def check(self, sample: Sample) -> Verdict:
        result = self._function(sample)
        if inspect.isawaitable(result):
            result = await result
        return result_verdict(result, self._threshold)


def result_verdict(result: Any, threshold: float | None = None) -> Verdict:
    """A function's result as a verdict; a number passes when it reaches `threshold`."""
    if isinstance(result, Verdict):
        return result
    if isinstance(result, bool | np.bool_):
        return Verdict.of_bool(bool(result))
    if isinstance(result, numbers.Real):
        return Verdict(_finite(result), None if threshold is None else float(result) >= threshold)
    if isinstance(result, Mapping):
        return _mapping_verdict(result, threshold)
    raise Unscorable(f"the function returned {quoted(result, 40)}; fix: return {_RESULTS}")


def _finite(value: Any) -> float:
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise Unscorable(f"the function returned {number}; fix: return a finite number")
    return number


def _mapping_verdict(result: Mapping[Any, Any], threshold: float | None) -> Verdict:
    unknown = [str(key) for key in result if key not in _RESULT_KEYS]
    if unknown:
        raise Unscorable(f"the function returned unknown keys {unknown}; fix: use {_RESULT_KEYS}")
    value, passed, reason = (result.get(key) for key in _RESULT_KEYS)
    if passed is not None and not isinstance(passed, bool | np.bool_):
        raise Unscorable(f"the function's `pass` is {quoted(passed, 40)}; fix: return a bool")
    if reason is not None and not isinstance(reason, str):
        raise Unscorable(f"the function's `reason` is {quoted(reason, 40)}; fix: return a text")
    if value is None and passed is None:
        raise Unscorable("the function returned neither `value` nor `pass`; fix: give one")
    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
        raise Unscorable(f"the function's `value` is {quoted(value, 40)}; fix: return a number")
    if value is None:
        value = 1.0 if passed else 0.0
    if passed is None and threshold is not None:
        passed = float(value) >= threshold
    return Verdict(_finite(value), None if passed is None else bool(passed), reason and cut(reason))


def load_function(reference: str) -> tuple[Callable[..., Any] | None, str | None]:
    """The callable a `package.module:function` names, or why it cannot be had."""
    if not _REFERENCE.fullmatch(reference):
        return None, (
            f"{quoted(reference)} is not `package.module:function`; fix: write the module, "
            "a colon, and the function's name"
        )
    module_name, _, attribute = reference.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        return None, f"cannot import `{module_name}` ({exc}); fix: check it is on the Python path"
    except Exception as exc:  # the module's own code failed: say how
        return None, f"importing `{module_name}` raised {type(exc).__name__}: {cut(str(exc), 120)}"
    for part in attribute.split("."):
        if not hasattr(target, part):
            return None, f"`{module_name}` has no `{attribute}`; fix: check the function's name"
        target = getattr(target, part)
    if not callable(target):
        return None, f"`{reference}` is not a function; fix: name a function"
    return target, _takes_one_argument(target, reference)


def _takes_one_argument(function: Callable[..., Any], reference: str) -> str | None:
    try:
        inspect.signature(function).bind(None)
    except TypeError:
        return f"`{reference}` cannot be called with one argument (the sample); fix: take one"
    except ValueError:  # some builtins have no signature to check
        pass
    return None


def python_function(config: Any, ctx: ScorerContext) -> Scorer:
    """`python`: `package.module:function(sample)` returns the verdict (sync or async)."""
    opts = Options(config, ("function", "kind", "threshold", "name"), shorthand="function")
    reference = opts.text("function", required=True)
    function: Callable[..., Any] | None = None
    if reference is not None:
        function, problem = load_function(reference)
        if problem is not None:
            opts.add(opts.loc("function"), problem)
    kind = cast(ScoreKind, opts.choice("kind", ("binary", "numeric"), "binary"))
    threshold = opts.number("threshold")
    name = opts.name("python")
    opts.done()
    assert function is not None  # opts.done() raised otherwise
    return PythonFunction(name, function, kind, threshold)


# --- not -----------------------------------------------------------------------------------


class Negation(Check):
    """Passes when the inner scorer fails, and fails when it passes; its errors stay errors."""

    def __init__(self, name: str, inner: Scorer) -> None:
        super().__init__(name)
        self.inner = inner
        self.waits = getattr(inner, "waits", True)

    async def check(self, sample: Sample) -> Verdict:
        verdict = await self.inner.score(sample)
        if verdict.error is not None:
            return verdict
        if verdict.passed is None:
            raise Unscorable(
                f"`{self.inner.name}` gives a score, not a pass or a fail; fix: give it a threshold"
            )
        details = {**verdict.details, "negated_value": verdict.value}
        reason = None if not verdict.passed else cut(_passed_reason(self.inner.name, verdict))
        return dataclasses.replace(
            verdict,
            value=0.0 if verdict.passed else 1.0,
            passed=not verdict.passed,
            reason=reason,
            details=details,
        )


def _passed_reason(name: str, verdict: Verdict) -> str:
    matched = verdict.details.get("matched")
    seen = verdict.reason or (f"matched {quoted(matched, 80)}" if matched else "")
    return f"expected `{name}` to fail, but it passed" + (f": {seen}" if seen else "")


def negate(scorer: Scorer, name: str | None = None) -> Scorer:
    """A binary scorer that passes when `scorer` fails (named `not-<its name>` by default)."""
    return Negation(name or f"not-{scorer.name}", scorer)


def make_not(config: Any, ctx: ScorerContext, build: ScorerBuilder) -> Scorer:
    """`not`: the negation of the one scorer in `config`, which `build` makes.

    `config` is one eval-file entry (`{contains: "as an AI"}`), with an optional `name:`
    for the negation; `build` is the loader's, so checks and judges can both be negated.
    """
    if not isinstance(config, Mapping) or not set(config) - {"name"}:
        fix = "write the scorer to negate, e.g. `not: {contains: text}`"
        raise ScorerConfigError([((), f"needs one scorer (got {quoted(config)}); fix: {fix}")])
    name, problems = entry_name(config)
    inner: Scorer | None = None
    try:
        inner = build({key: value for key, value in config.items() if key != "name"}, ctx)
    except ScorerConfigError as exc:
        problems += exc.problems or [((), "is not a valid scorer; fix: check it")]
    if problems or inner is None:
        raise ScorerConfigError(problems)
    return negate(inner, name)
