"""Programmatic checks of an answer: text, numbers, limits; and `CHECKS`, every built-in
scorer that is not an LLM judge, by the name an eval file gives it.

Each entry is a factory `(config, ctx) -> Scorer`, where `config` is the YAML value under
the scorer's key. Everything a check needs (patterns, templates, schemas, functions) is
prepared by the factory, so that a bad setting is reported when the file loads and
`score` does little work.
"""

from __future__ import annotations

import difflib
import functools
import math
import re
from collections.abc import Mapping
from typing import Any

from controltower.evals.checks_base import (
    Check,
    Options,
    Unscorable,
    ValueOf,
    answer_json,
    as_text,
    cut,
    entry_name,
    finite,
    is_number,
    is_template,
    quoted,
    same_json,
)
from controltower.evals.checks_json import is_json, json_schema, tool_call
from controltower.evals.custom import make_not, python_function
from controltower.evals.scoring import (
    Sample,
    Scorer,
    ScorerConfigError,
    ScorerContext,
    ScorerFactory,
    Verdict,
)
from controltower.evals.similarity import embedding, levenshtein, similar

__all__ = ["CHECKS", "ScorerFactory", "build_check"]

# Patterns run on at most this much of an answer, numbers are looked for in this much
MAX_REGEX_CHARS = 100_000
MAX_NUMBER_CHARS = 20_000
DEFAULT_REL = 1e-9  # "equal" for numbers that went through text and float arithmetic
# a sign only when nothing word-like comes before it, so "2024-01-05" holds no negatives
_NUMBER = re.compile(
    r"(?<![\w.])[-+\u2212]?(?:(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?"
)


def _text_like(value: Any) -> bool:
    return isinstance(value, str) or is_number(value)


def _anything(_value: Any) -> bool:
    return True


# --- exact, contains, starts-with ----------------------------------------------------------


class Exact(Check):
    """The answer equals the value: as text, or as JSON when the value is not a string."""

    def __init__(self, name: str, expected: ValueOf, case: bool, strip: bool) -> None:
        super().__init__(name)
        self._expected, self._case, self._strip = expected, case, strip

    async def check(self, sample: Sample) -> Verdict:
        expected = self._expected(sample)
        if not isinstance(expected, str):
            return _json_equal(sample, expected)
        got, want = sample.text, expected
        if self._strip:
            got, want = got.strip(), want.strip()
        if got == want or (not self._case and got.casefold() == want.casefold()):
            return Verdict.of_bool(True)
        return Verdict.of_bool(False, cut(f"expected {quoted(want)}, got {quoted(got)}"))


def _json_equal(sample: Sample, expected: Any) -> Verdict:
    try:
        got = answer_json(sample)
    except ValueError:
        return Verdict.of_bool(
            False, cut(f"expected {quoted(expected)}, got {quoted(sample.text)}")
        )
    if same_json(got, expected):
        return Verdict.of_bool(True)
    return Verdict.of_bool(False, cut(f"expected {quoted(expected)}, got {quoted(got)}"))


class Contains(Check):
    """The answer contains the text, or all (or any) of several texts."""

    def __init__(self, name: str, needles: ValueOf, every: bool, case: bool) -> None:
        super().__init__(name)
        self._needles, self._every, self._case = needles, every, case

    async def check(self, sample: Sample) -> Verdict:
        needles = _needles(self._needles(sample))
        text = sample.text
        if not self._case:
            text, needles = text.casefold(), [needle.casefold() for needle in needles]
        found = [needle for needle in needles if needle in text]
        if len(found) == len(needles) or (found and not self._every):
            return Verdict(1.0, True, details={"matched": found})
        if self._every:
            missing = ", ".join(quoted(n, 40) for n in needles if n not in found)
            return Verdict.of_bool(False, cut(f"missing {missing} in {quoted(sample.text)}"))
        wanted = ", ".join(quoted(n, 40) for n in needles)
        return Verdict.of_bool(False, cut(f"none of {wanted} in {quoted(sample.text)}"))


def _needles(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise Unscorable("no text to look for (the value is an empty list)")
    if not all(_text_like(part) for part in values):
        raise Unscorable(f"needs texts to look for, not {quoted(value)}")
    return [as_text(part) for part in values]


class StartsWith(Check):
    """The answer starts with the text (leading whitespace skipped unless `strip: false`)."""

    def __init__(self, name: str, prefix: ValueOf, case: bool, strip: bool) -> None:
        super().__init__(name)
        self._prefix, self._case, self._strip = prefix, case, strip

    async def check(self, sample: Sample) -> Verdict:
        prefix = self._prefix(sample)
        if not _text_like(prefix):
            raise Unscorable(f"needs a text to start with, not {quoted(prefix)}")
        prefix = as_text(prefix)
        text = sample.text.lstrip() if self._strip else sample.text
        folded = prefix if self._case else prefix.casefold()
        # folding never shortens a character, so this many are enough to compare
        head = text[: len(folded)]
        if (head if self._case else head.casefold()).startswith(folded):
            return Verdict.of_bool(True)
        got = quoted(text, len(prefix) + 20)
        return Verdict.of_bool(False, cut(f"expected it to start with {quoted(prefix)}, got {got}"))


def exact(config: Any, ctx: ScorerContext) -> Scorer:
    """`exact`: the answer equals the value (text, or JSON when the value is not a string)."""
    opts = Options(config, ("value", "case", "strip", "name"), shorthand="value")
    expected = opts.value("value", ctx, _anything, "a value")
    check = Exact(opts.name("exact"), expected, opts.flag("case", True), opts.flag("strip", True))
    opts.done()
    return check


def contains(config: Any, ctx: ScorerContext) -> Scorer:
    """`contains`: the answer contains a text, or all (`mode: any`: any) of a list."""
    return _contains(config, ctx, "contains", case=None)


def icontains(config: Any, ctx: ScorerContext) -> Scorer:
    """`icontains`: `contains` with `case: false`."""
    return _contains(config, ctx, "icontains", case=False)


def _contains(config: Any, ctx: ScorerContext, key: str, case: bool | None) -> Scorer:
    allowed = ("value", "mode", "name") if case is not None else ("value", "mode", "case", "name")
    opts = Options(config, allowed, shorthand="value")
    needles = opts.value("value", ctx, _needle_list, "a text, a number or a list of them")
    if isinstance(opts.raw("value"), str | list) and "" in _as_list(opts.raw("value")):
        opts.add(opts.loc("value"), "an empty text is in every answer; fix: remove it")
    every = opts.choice("mode", ("all", "any"), "all") == "all"
    check = Contains(
        opts.name(key), needles, every, opts.flag("case", True) if case is None else case
    )
    opts.done()
    return check


def _needle_list(value: Any) -> bool:
    values = _as_list(value)
    return bool(values) and all(_text_like(part) for part in values)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def starts_with(config: Any, ctx: ScorerContext) -> Scorer:
    """`starts-with`: the answer starts with the text."""
    opts = Options(config, ("value", "case", "strip", "name"), shorthand="value")
    prefix = opts.value("value", ctx, _text_like, "a text")
    check = StartsWith(
        opts.name("starts-with"), prefix, opts.flag("case", True), opts.flag("strip", True)
    )
    opts.done()
    return check


# --- regex ---------------------------------------------------------------------------------


class Regex(Check):
    """The pattern matches somewhere in the answer."""

    def __init__(
        self, name: str, fixed: re.Pattern[str] | None, source: ValueOf, flags: int
    ) -> None:
        super().__init__(name)
        self._fixed, self._source, self._flags = fixed, source, flags

    async def check(self, sample: Sample) -> Verdict:
        pattern = self._fixed or self._sample_pattern(sample)
        text = sample.text[:MAX_REGEX_CHARS]
        found = pattern.search(text)
        details: dict[str, Any] = {"truncated": True} if len(sample.text) > len(text) else {}
        if found:
            return Verdict(1.0, True, details={**details, "matched": found.group(0)[:80]})
        reason = cut(f"no match for /{pattern.pattern[:60]}/ in {quoted(sample.text)}")
        return Verdict(0.0, False, reason, details=details)

    def _sample_pattern(self, sample: Sample) -> re.Pattern[str]:
        source = self._source(sample)
        if not isinstance(source, str) or not source:
            raise Unscorable(f"needs a pattern, not {quoted(source)}")
        try:
            return _cached_pattern(source, self._flags)
        except re.error as exc:
            raise Unscorable(f"{quoted(source)} is not a valid pattern ({exc})") from None


@functools.lru_cache(maxsize=256)
def _cached_pattern(source: str, flags: int) -> re.Pattern[str]:
    return re.compile(source, flags)


def regex(config: Any, ctx: ScorerContext) -> Scorer:
    """`regex`: the pattern matches the answer (`case: false` ignores case)."""
    opts = Options(config, ("pattern", "case", "name"), shorthand="pattern")
    source = opts.value("pattern", ctx, _is_text, "a pattern")
    flags = 0 if opts.flag("case", True) else re.IGNORECASE
    raw, fixed = opts.raw("pattern"), None
    if _is_text(raw) and not is_template(raw):
        try:
            fixed = re.compile(raw, flags)
        except re.error as exc:
            opts.add(opts.loc("pattern"), f"is not a valid pattern ({exc}); fix: correct it")
    check = Regex(opts.name("regex"), fixed, source, flags)
    opts.done()
    return check


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and value != ""


# --- numeric -------------------------------------------------------------------------------


class Numeric(Check):
    """A number in the answer is the expected one, within `abs` or `rel` of it."""

    def __init__(
        self, name: str, expected: ValueOf, tolerance: tuple[float, float], pick: str
    ) -> None:
        super().__init__(name)
        self._expected, self._tolerance, self._pick = expected, tolerance, pick

    async def check(self, sample: Sample) -> Verdict:
        want = _expected_number(self._expected(sample))
        found = _answer_numbers(sample, self._pick)
        if not found:
            return Verdict.of_bool(
                False, cut(f"expected {want:g}, no number in {quoted(sample.text)}")
            )
        allowed = max(self._tolerance[0], self._tolerance[1] * abs(want))
        close = [got for got in found if abs(got - want) <= allowed]
        details = {"expected": want, "got": close[0] if close else found[-1]}
        if close:
            return Verdict(1.0, True, details=details)
        seen = ", ".join(f"{got:g}" for got in found[:5])
        within = f" (±{allowed:g})" if allowed > DEFAULT_REL * abs(want) else ""
        return Verdict(0.0, False, cut(f"expected {want:g}{within}, got {seen}"), details=details)


def _answer_numbers(sample: Sample, pick: str) -> list[float]:
    number = finite(sample.output)
    if number is not None:
        return [number]
    text = sample.text
    text = text[-MAX_NUMBER_CHARS:] if pick == "last" else text[:MAX_NUMBER_CHARS]
    found = numbers_in(text)
    if pick == "any" or not found:
        return found
    return [found[-1]] if pick == "last" else [found[0]]


def numbers_in(text: str) -> list[float]:
    """The finite numbers written in a text ("1,234.5", "-3", "2e-3"; U+2212 as a minus)."""
    numbers = []
    for match in _NUMBER.finditer(text):
        number = float(match.group(0).replace(",", "").replace("\u2212", "-"))
        if math.isfinite(number):
            numbers.append(number)
    return numbers


def _expected_number(value: Any) -> float:
    number = finite(value)
    if number is not None:
        return number
    if isinstance(value, str):
        found = numbers_in(value[:MAX_NUMBER_CHARS])
        if len(found) == 1:
            return found[0]
    raise Unscorable(f"needs one expected number, not {quoted(value)}")


def numeric(config: Any, ctx: ScorerContext) -> Scorer:
    """`numeric`: the number in the answer (`pick`: last, first, any) is the value ± a tolerance."""
    opts = Options(config, ("value", "abs", "rel", "pick", "name"), shorthand="value")
    expected = opts.value("value", ctx, _text_like, "a number or a text holding one")
    raw = opts.raw("value")
    if isinstance(raw, str) and not is_template(raw) and len(numbers_in(raw)) != 1:
        opts.add(opts.loc("value"), "holds no single number; fix: write one number")
    tolerance = (opts.number("abs", low=0) or 0.0, opts.number("rel", low=0) or DEFAULT_REL)
    pick = opts.choice("pick", ("last", "first", "any"), "last")
    check = Numeric(opts.name("numeric"), expected, tolerance, pick)
    opts.done()
    return check


# --- limits --------------------------------------------------------------------------------


class Limit(Check):
    """A measure of the call (its latency, its cost) is at most a limit."""

    def __init__(self, name: str, measure: str, limit: float, unit: str) -> None:
        super().__init__(name)
        self._measure, self._limit, self._unit = measure, limit, unit

    async def check(self, sample: Sample) -> Verdict:
        value = getattr(sample, self._measure)
        if value is None:
            raise Unscorable(f"the sample has no {self._measure.split('_')[0]} recorded")
        details = {self._measure: value}
        if value <= self._limit:
            return Verdict(1.0, True, details=details)
        over = f"{value:g} {self._unit}, over the limit of {self._limit:g} {self._unit}"
        return Verdict(0.0, False, over, details=details)


def _limit(key: str, setting: str, measure: str, unit: str) -> ScorerFactory:
    def factory(config: Any, ctx: ScorerContext) -> Scorer:
        opts = Options(config, (setting, "name"), shorthand=setting)
        if not opts.has(setting):
            opts.add(opts.loc(setting), f"is missing; fix: add `{setting}:` with the limit")
        limit = opts.number(setting, low=0)
        check = Limit(opts.name(key), measure, limit or 0.0, unit)
        opts.done()
        return check

    factory.__doc__ = f"`{key}`: the sample's {measure} is at most `{setting}`."
    return factory


latency = _limit("latency", "max_ms", "latency_ms", "ms")
cost = _limit("cost", "max_usd", "cost_usd", "USD")


# --- the registry --------------------------------------------------------------------------


def negation(config: Any, ctx: ScorerContext) -> Scorer:
    """`not`: the inner check (any of `CHECKS`) fails."""
    return make_not(config, ctx, build_check)


CHECKS: dict[str, ScorerFactory] = {
    "exact": exact,
    "contains": contains,
    "icontains": icontains,
    "regex": regex,
    "starts-with": starts_with,
    "is-json": is_json,
    "json-schema": json_schema,
    "numeric": numeric,
    "levenshtein": levenshtein,
    "similar": similar,
    "embedding": embedding,
    "tool-call": tool_call,
    "latency": latency,
    "cost": cost,
    "python": python_function,
    "not": negation,
}


def build_check(spec: Any, ctx: ScorerContext) -> Scorer:
    """A scorer from one eval-file entry of `CHECKS` (`{contains: "x"}`, `name:` optional).

    Problems are reported relative to the entry: `("contains", "mode")`.
    """
    if not isinstance(spec, Mapping):
        got = quoted(spec)
        fix = "write it as `contains: text`"
        raise ScorerConfigError([((), f"must be one scorer mapping (got {got}); fix: {fix}")])
    keys = [key for key in spec if key != "name"]
    if len(keys) != 1 or keys[0] not in CHECKS:
        raise ScorerConfigError([_which_check(keys)])
    key = str(keys[0])
    name, problems = entry_name(spec)
    scorer: Scorer | None = None
    try:
        scorer = CHECKS[key](spec[key], ctx)
    except ScorerConfigError as exc:
        problems += [((key, *loc), text) for loc, text in exc.problems]
    if problems or scorer is None:
        raise ScorerConfigError(problems)
    if name is not None:
        scorer.name = name
    return scorer


def _which_check(keys: list[Any]) -> tuple[tuple[str | int, ...], str]:
    known = ", ".join(CHECKS)
    if len(keys) != 1:
        got = ", ".join(str(key) for key in keys) or "none"
        return (), f"must name exactly one scorer (got {got}); fix: use one of {known}"
    close = difflib.get_close_matches(str(keys[0]), list(CHECKS), n=1)
    hint = f"did you mean `{close[0]}`? " if close else ""
    return (str(keys[0]),), f"unknown scorer; fix: {hint}use one of {known}"
