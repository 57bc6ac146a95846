"""What every programmatic check shares: its settings read with every problem reported at
once, the value it compares with, and a `score` that turns any failure into an error verdict.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from controltower.errors import APIError, is_retryable
from controltower.evals.scoring import (
    Sample,
    ScoreKind,
    ScorerConfigError,
    ScorerContext,
    Verdict,
)
from controltower.evals.templating import TemplateProblem

Loc = tuple[str | int, ...]
ValueOf = Callable[[Sample], Any]

REASON_CHARS = 200
SHOWN_CHARS = 80


class Unscorable(Exception):
    """The sample cannot be scored by this check: an error verdict, neither a pass nor a fail."""


def quoted(value: Any, limit: int = SHOWN_CHARS) -> str:
    """A short printable form of a value, cut before it is formatted (answers can be huge)."""
    if isinstance(value, str):
        return repr(value[:limit]) + ("…" if len(value) > limit else "")
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = f"<{type(value).__name__}>"
    return text[:limit] + ("…" if len(text) > limit else "")


def cut(text: str, limit: int = REASON_CHARS) -> str:
    """`text` at most `limit` characters long."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def as_text(value: Any) -> str:
    """A value compared as text: a string as is, anything else as its JSON."""
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return str(value)


def answer_json(sample: Sample) -> Any:
    """The answer as a JSON value: the target's structured output, or its text parsed.

    Raises `ValueError` when the text is not JSON.
    """
    if sample.output is not None and not isinstance(sample.output, str):
        return sample.output
    return orjson.loads(sample.text)


def is_template(text: str) -> bool:
    """Whether `text` is a template (the rule `SampleTemplates.compile` follows)."""
    return "{{" in text or "{%" in text or "{#" in text


def is_number(value: Any) -> bool:
    """An int or a float, and not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def finite(value: Any) -> float | None:
    """A number as a finite float; None for anything else (a bool, NaN, 10**400, text)."""
    if not is_number(value):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def item_expected(sample: Sample) -> Any:
    """The item's `expected`; `Unscorable` when it has none."""
    if sample.item.expected is None:
        raise Unscorable("the item has no `expected`, and the scorer gives no value")
    return sample.item.expected


def entry_name(entry: Mapping[Any, Any]) -> tuple[str | None, list[tuple[Loc, str]]]:
    """The `name:` an eval-file entry gives its scorer, or the problem with it."""
    name = entry.get("name")
    if name is None or (isinstance(name, str) and name):
        return name, []
    return None, [(("name",), f"must be a non-empty string (got {quoted(name)}); fix: set it")]


class Check:
    """A scorer whose `score` turns what goes wrong into an error verdict, except a
    retryable gateway error (a 429, a 5xx: `errors.is_retryable`), which propagates like
    a judge's, so that the runner backs off and scores the sample again."""

    kind: ScoreKind = "binary"
    # whether scoring may wait on I/O (a model, a user's async function); checks that do
    # not are run in line, not as tasks of their own
    waits = False

    def __init__(self, name: str) -> None:
        self.name = name

    async def score(self, sample: Sample) -> Verdict:
        """The verdict on one sample (errors are returned as `Verdict.failed`, not raised)."""
        try:
            return await self.check(sample)
        except APIError as exc:
            if is_retryable(exc):
                raise
            return Verdict.failed(cut(f"the gateway refused: {exc.message}"))
        except Unscorable as exc:
            return Verdict.failed(cut(str(exc)))
        except Exception as exc:  # one bad sample must not stop the run
            return Verdict.failed(cut(f"{type(exc).__name__}: {exc}"))

    async def check(self, sample: Sample) -> Verdict:
        """The verdict; may raise (`Unscorable` for a sample that cannot be scored)."""
        raise NotImplementedError


class Options:
    """One scorer's settings, read key by key; every problem is kept, then raised at once.

    `config` is the YAML value under the scorer's key: a mapping, null (every default),
    or a shorthand (a string, a number, a list) that stands for the `shorthand` key.
    """

    def __init__(self, config: Any, allowed: Sequence[str], shorthand: str | None = None) -> None:
        self.problems: list[tuple[Loc, str]] = []
        self._shorthand: str | None = None
        self._values: dict[str, Any] = {}
        if isinstance(config, Mapping):
            self._values = {str(key): value for key, value in config.items()}
            self._check_keys(allowed)
        elif config is not None and shorthand is not None:
            self._values = {shorthand: config}
            self._shorthand = shorthand
        elif config is not None:
            self.add((), f"must be a mapping (got {quoted(config)}); fix: {_keys_fix(allowed)}")

    def _check_keys(self, allowed: Sequence[str]) -> None:
        for key in self._values:
            if key in allowed:
                continue
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean `{close[0]}`? " if close else ""
            extra = (
                "; to compare with a mapping, put it under `value:`" if "value" in allowed else ""
            )
            self.add((key,), f"unknown key; fix: {hint}{_keys_fix(allowed)}{extra}")

    def loc(self, key: str) -> Loc:
        """Where `key` is, relative to the scorer's value (a shorthand is the value itself)."""
        return () if key == self._shorthand else (key,)

    def add(self, loc: Loc, message: str) -> None:
        """Record one problem ("what is wrong; fix: what to do")."""
        self.problems.append((loc, message))

    def has(self, key: str) -> bool:
        """Whether the settings give `key` (null counts as not given)."""
        return self._values.get(key) is not None

    def raw(self, key: str) -> Any:
        """The value of `key` as written (None when not given)."""
        return self._values.get(key)

    def flag(self, key: str, default: bool) -> bool:
        """A true/false setting."""
        value = self._values.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.add(self.loc(key), f"must be true or false (got {quoted(value)}); fix: set it")
            return default
        return value

    def text(self, key: str, *, required: bool = False) -> str | None:
        """A non-empty string setting."""
        value = self._values.get(key)
        if value is None:
            if required:
                self.add(self.loc(key), f"is missing; fix: add `{key}:`")
            return None
        if not isinstance(value, str) or not value:
            self.add(
                self.loc(key), f"must be a non-empty string (got {quoted(value)}); fix: set it"
            )
            return None
        return value

    def choice(self, key: str, choices: Sequence[str], default: str) -> str:
        """One of `choices`."""
        value = self._values.get(key)
        if value is None:
            return default
        if value not in choices:
            listed = ", ".join(choices)
            self.add(self.loc(key), f"must be one of {listed} (got {quoted(value)}); fix: pick one")
            return default
        return str(value)

    def number(self, key: str, low: float | None = None, high: float | None = None) -> float | None:
        """A finite number setting within [low, high]."""
        value = self._values.get(key)
        if value is None:
            return None
        number = finite(value)
        if number is None:
            self.add(self.loc(key), f"must be a number (got {quoted(value)}); fix: set one")
            return None
        if (low is not None and number < low) or (high is not None and number > high):
            self.add(self.loc(key), f"must be {_span(low, high)} (got {number:g}); fix: change it")
            return None
        return number

    def name(self, default: str) -> str:
        """The scorer's name: `name:` when given, else the YAML key."""
        return self.text("name") or default

    def value(
        self, key: str, ctx: ScorerContext, accept: Callable[[Any], bool], what: str
    ) -> ValueOf:
        """What the check compares with: the setting (templates rendered per sample), or the
        item's `expected` when it is not given."""
        value = self._values.get(key)
        if value is None:
            return item_expected
        if not accept(value):
            self.add(self.loc(key), f"must be {what} (got {quoted(value)}); fix: change it")
            return item_expected
        return self._compiled(key, value, ctx)

    def _compiled(self, key: str, value: Any, ctx: ScorerContext) -> ValueOf:
        if isinstance(value, list):
            parts = [self._compiled(key, part, ctx) for part in value]
            return lambda sample: [part(sample) for part in parts]
        if not isinstance(value, str) or not is_template(value):
            return lambda _sample: value
        try:
            render = ctx.template(value)
        except TemplateProblem as exc:
            self.add(self.loc(key), f"{exc}; fix: correct the template")
            return item_expected
        return _rendering(render)

    def done(self) -> None:
        """Raise every problem found, if any."""
        if self.problems:
            raise ScorerConfigError(self.problems)


def _rendering(render: Callable[[Sample], str]) -> ValueOf:
    def rendered(sample: Sample) -> str:
        try:
            return render(sample)
        except Exception as exc:  # a render error is the sample's, not the file's
            raise Unscorable(f"the template could not be rendered: {exc}") from None

    return rendered


def _keys_fix(allowed: Sequence[str]) -> str:
    return f"use the keys {', '.join(allowed)}" if allowed else "remove it"


def _span(low: float | None, high: float | None) -> str:
    if low is None:
        return f"at most {high:g}"
    return f"at least {low:g}" if high is None else f"from {low:g} to {high:g}"


def same_json(a: Any, b: Any) -> bool:
    """JSON equality: numbers by value (1 == 1.0), but true is not 1 and "1" is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if is_number(a) and is_number(b):
        return bool(a == b)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(same_json(a[key], b[key]) for key in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)
