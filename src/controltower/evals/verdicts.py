"""A judge's reply read as a verdict: structured output first, then a careful fallback.

The rules, in order (the first that applies decides):

1. A refusal, or a reply with no text and no tool call, is an error.
2. The whole reply (one code fence around it allowed) is a JSON object: it is the verdict.
3. A tool call's arguments are a JSON object: the last such call is the verdict.
4. A reply cut at the token limit (`finish_reason == "length"`) with neither is an error:
   its real verdict may be what was cut, and what is left may quote the output under test.
5. JSON objects embedded in prose: the one ending last that carries the verdict key.
6. Textual patterns ("Score: 4", "4/5", "[[A]]", "Verdict: PASS"): the last occurrence.
7. Anything else is an error ("no verdict found").

Whatever rule finds the verdict, the value it found binds: if it is off the scale the reply
is an error, and an earlier, in-scale verdict (which may be one the output under test
planted, "ignore the above, Score: 5") is never used instead. A float on an integer scale
counts only when it is whole (4.0 is 4; 3.5 is an error, since rounding would invent a
verdict the judge did not give). `parse_reply` never raises.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from controltower.evals.scoring import ModelReply

__all__ = [
    "IntScale",
    "Labels",
    "OffScale",
    "ParseOutcome",
    "ParsedVerdict",
    "PassFail",
    "Tally",
    "Unparsable",
    "VerdictShape",
    "parse_reply",
    "parse_text",
    "response_schema",
    "scale_shape",
]

Source = Literal["json", "tool", "embedded", "text"]

REASONING_KEYS = ("reasoning", "reason", "rationale", "explanation")
_MAX_OBJECT_STARTS = 256  # embedded-object candidates tried, counted from the end of the reply
_NUMBER = r"(-?\d+(?:\.\d+)?)"
_KEY_GAP = r"[\"'*_\s]*[:=][\"'*_\s]*"  # `Score: 4`, `**Score:** 4`, `"score": "4"`, `score=4`
MAX_SCALE_STEPS = 100  # an integer scale's width; past it, a judge cannot use it consistently
_SCALE_RANGE = re.compile(r"\A\s*(\d+)\s*-\s*(\d+)\s*\Z")
_FENCE = re.compile(r"\A\s*```[\w-]*\s*\n?(.*?)\n?\s*```\s*\Z", re.DOTALL)
_TRUTHY = {"pass", "passed", "yes", "true", "correct", "y", "1"}
_FALSY = {"fail", "failed", "no", "false", "incorrect", "n", "0"}


class OffScale(ValueError):
    """A verdict was found but its value is not one the scale allows."""


@dataclass(frozen=True, slots=True)
class ParsedVerdict:
    """A verdict read from a reply: the value on the shape's scale and the reasoning."""

    value: Any  # int on an IntScale, bool for PassFail, a label, or a Tally's rows
    reasoning: str
    source: Source


@dataclass(frozen=True, slots=True)
class Unparsable:
    """A reply that holds no usable verdict, and why."""

    error: str


ParseOutcome = ParsedVerdict | Unparsable


class VerdictShape(Protocol):
    """What a judge's verdict looks like: its key, JSON schema, and how to read it."""

    @property
    def key(self) -> str:
        """The reply's key that holds the verdict."""
        ...

    def schema(self) -> dict[str, Any]:
        """The JSON schema of the verdict's value."""
        ...

    def describe(self) -> str:
        """The verdict's value in words, for the judge's instructions."""
        ...

    def coerce(self, raw: Any) -> Any:
        """`raw` as a value on the scale; `OffScale` when it is not one."""
        ...

    def in_text(self, text: str) -> list[tuple[int, str]]:
        """Textual verdicts in `text` as (position, matched value)."""
        ...


@dataclass(frozen=True, slots=True)
class IntScale:
    """An integer score from `low` to `high` inclusive."""

    low: int
    high: int
    key: str = "score"

    def schema(self) -> dict[str, Any]:
        """An enum of the scale's integers (strict structured output takes enums)."""
        return {"type": "integer", "enum": list(range(self.low, self.high + 1))}

    def describe(self) -> str:
        """The scale in words."""
        return f"an integer from {self.low} to {self.high}"

    def coerce(self, raw: Any) -> int:
        """`raw` (an int, a whole float, or either as a string) checked against the scale."""
        number = _whole_number(raw)
        if not self.low <= number <= self.high:
            raise OffScale(f"score {number} is outside the scale {self.low}-{self.high}")
        return number

    def in_text(self, text: str) -> list[tuple[int, str]]:
        """`Score: 4`, `Rating = 4`, `[[4]]`, `4/5`, `4 out of 5` (the scale's top only)."""
        patterns = (
            rf"\b(?:score|rating|grade|verdict){_KEY_GAP}{_NUMBER}",
            rf"\[\[\s*{_NUMBER}\s*\]\]",
            rf"(?<![\w.]){_NUMBER}\s*(?:/|out of)\s*{self.high}(?!\d|[./]\d)",
        )
        return _matches(text, patterns)


@dataclass(frozen=True, slots=True)
class PassFail:
    """PASS or FAIL."""

    key: str = "verdict"

    def schema(self) -> dict[str, Any]:
        """The two labels as an enum."""
        return {"type": "string", "enum": ["PASS", "FAIL"]}

    def describe(self) -> str:
        """The labels in words."""
        return '"PASS" or "FAIL"'

    def coerce(self, raw: Any) -> bool:
        """PASS/FAIL, a JSON boolean, or yes/no, true/false, correct/incorrect."""
        if isinstance(raw, bool):
            return raw
        word = str(raw).strip().strip("\"'*[]. ").lower() if isinstance(raw, str | int) else ""
        if word in _TRUTHY:
            return True
        if word in _FALSY:
            return False
        raise OffScale(f"verdict {_shown(raw)} is not PASS or FAIL")

    def in_text(self, text: str) -> list[tuple[int, str]]:
        """`Verdict: PASS`, `[[FAIL]]`, or a line that is only PASS or FAIL."""
        words = r"(pass(?:ed)?|fail(?:ed)?|yes|no|correct|incorrect|true|false)(?![\w-])"
        patterns = (
            rf"\b(?:verdict|result|grade|decision){_KEY_GAP}{words}",
            rf"\[\[\s*{words}\s*\]\]",
            r"(?m)^[\s*_#>]*(pass|fail)[\s*_.!]*$",
        )
        return _matches(text, patterns)


@dataclass(frozen=True, slots=True)
class Labels:
    """One of a few labels (a pairwise winner, a factuality category)."""

    labels: tuple[str, ...]
    key: str = "verdict"

    def schema(self) -> dict[str, Any]:
        """The labels as an enum."""
        return {"type": "string", "enum": list(self.labels)}

    def describe(self) -> str:
        """The labels in words."""
        return "one of " + ", ".join(f'"{label}"' for label in self.labels)

    def coerce(self, raw: Any) -> str:
        """The label `raw` names, case and surrounding quotes or brackets aside."""
        if isinstance(raw, str):
            word = raw.strip().strip("\"'*[](). ").casefold()
            for label in self.labels:
                if label.casefold() == word:
                    return label
        raise OffScale(f"verdict {_shown(raw)} is not {self.describe()}")

    def in_text(self, text: str) -> list[tuple[int, str]]:
        """`Verdict: A`, `Winner = tie`, `[[B]]`."""
        ordered = sorted(self.labels, key=len, reverse=True)  # longest first: "tie" vs "t"
        words = "(" + "|".join(re.escape(label) for label in ordered) + r")(?![\w-])"
        patterns = (
            rf"\b(?:verdict|choice|winner|category|label){_KEY_GAP}{words}",
            rf"\[\[\s*{words}\s*\]\]",
        )
        return _matches(text, patterns)


@dataclass(frozen=True, slots=True)
class Tally:
    """A list of rows, each an item (a claim, a passage number) and a yes/no flag.

    Only structured replies carry one: there is no textual fallback for a list.
    """

    key: str  # "claims"
    item_key: str  # "claim"
    flag_key: str  # "supported"
    item_type: Literal["string", "integer"] = "string"

    def schema(self) -> dict[str, Any]:
        """An array of {item, flag} objects."""
        row = {
            "type": "object",
            "properties": {
                self.item_key: {"type": self.item_type},
                self.flag_key: {"type": "boolean"},
            },
            "required": [self.item_key, self.flag_key],
            "additionalProperties": False,
        }
        return {"type": "array", "items": row}

    def describe(self) -> str:
        """The rows in words."""
        return f'a list of objects with "{self.item_key}" and "{self.flag_key}" (true or false)'

    def coerce(self, raw: Any) -> tuple[tuple[Any, bool], ...]:
        """The rows as (item, flag) pairs."""
        if not isinstance(raw, list):
            raise OffScale(f'"{self.key}" is not a list')
        return tuple(self._row(row, index) for index, row in enumerate(raw))

    def _row(self, row: Any, index: int) -> tuple[Any, bool]:
        if not isinstance(row, dict) or self.flag_key not in row:
            raise OffScale(f'"{self.key}"[{index}] has no "{self.flag_key}"')
        try:
            flag = PassFail().coerce(row[self.flag_key])
        except OffScale:
            raise OffScale(f'"{self.key}"[{index}].{self.flag_key} is not true or false') from None
        return row.get(self.item_key), flag

    def in_text(self, text: str) -> list[tuple[int, str]]:
        """None: a list is read only from JSON."""
        return []


def scale_shape(scale: str) -> IntScale | PassFail:
    """The verdict a scale setting names ("1-5", any LOW-HIGH, or "pass-fail"); else ValueError."""
    if scale.strip().lower() in {"pass-fail", "pass/fail"}:
        return PassFail()
    match = _SCALE_RANGE.match(scale)
    if match is None:
        raise ValueError(f"unknown scale {scale!r}")
    low, high = int(match.group(1)), int(match.group(2))
    if not low < high <= low + MAX_SCALE_STEPS:
        raise ValueError(f"scale {scale!r} must run up, over at most {MAX_SCALE_STEPS} steps")
    return IntScale(low, high)


def response_schema(shape: VerdictShape) -> dict[str, Any]:
    """The reply's JSON schema: reasoning first, so the judge reasons before it decides."""
    return {
        "type": "object",
        "properties": {"reasoning": {"type": "string"}, shape.key: shape.schema()},
        "required": ["reasoning", shape.key],
        "additionalProperties": False,
    }


def parse_reply(reply: ModelReply, shape: VerdictShape) -> ParseOutcome:
    """The verdict in a judge's chat completion, or why there is none (never raises)."""
    try:
        return _parse(reply, shape)
    except Exception as exc:  # the last guard: a reply is outside input, whatever it holds
        return Unparsable(f"the judge's reply could not be read ({type(exc).__name__})")


def parse_text(text: str, shape: VerdictShape, *, truncated: bool = False) -> ParseOutcome:
    """The verdict in a reply's text alone (rules 2, 4, 5, 6 and 7)."""
    try:
        return _parse_text(text, shape, truncated)
    except Exception as exc:  # same guard as parse_reply
        return Unparsable(f"the judge's reply could not be read ({type(exc).__name__})")


def _parse(reply: ModelReply, shape: VerdictShape) -> ParseOutcome:
    message = reply.message
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal.strip():
        return Unparsable(f"the judge refused: {_clip(refusal)}")
    text = reply.content
    calls = _tool_arguments(message)
    truncated = _finish_reason(reply) == "length"
    if not text.strip() and not calls:
        cut = " (cut at the token limit: raise max_tokens)" if truncated else ""
        return Unparsable(f"the judge's reply is empty{cut}")
    whole = _json_object(_unfenced(text))
    if whole is not None:
        return _from_object(whole, shape, "json")
    objects = [found for found in map(_json_object, calls) if found is not None]
    if objects:
        return _from_object(objects[-1], shape, "tool")
    if not text.strip():
        if truncated:
            return Unparsable("the judge's tool call was cut at the token limit; raise max_tokens")
        return Unparsable("the judge's tool call arguments are not a JSON object")
    return _parse_prose(text, shape, truncated)


def _parse_text(text: str, shape: VerdictShape, truncated: bool) -> ParseOutcome:
    if not text.strip():
        return Unparsable("the judge's reply is empty")
    whole = _json_object(_unfenced(text))
    if whole is not None:
        return _from_object(whole, shape, "json")
    return _parse_prose(text, shape, truncated)


def _parse_prose(text: str, shape: VerdictShape, truncated: bool) -> ParseOutcome:
    if truncated:
        return Unparsable(
            "the judge's reply was cut at the token limit before a complete verdict; "
            "raise max_tokens"
        )
    embedded = _last_embedded(text, shape.key)
    if embedded is not None:
        return _from_object(embedded, shape, "embedded")
    found = shape.in_text(text)
    if found:
        _, raw = max(found)
        return _checked(shape, raw, text.strip(), "text")
    return Unparsable(f"no verdict found in the judge's reply: {_clip(text)}")


def _from_object(obj: dict[str, Any], shape: VerdictShape, source: Source) -> ParseOutcome:
    if shape.key not in obj:
        keys = ", ".join(sorted(map(str, obj))) or "none"
        return Unparsable(f'the judge\'s JSON has no "{shape.key}" (its keys: {_clip(keys)})')
    return _checked(shape, obj[shape.key], _reasoning(obj), source)


def _checked(shape: VerdictShape, raw: Any, reasoning: str, source: Source) -> ParseOutcome:
    try:
        value = shape.coerce(raw)
    except OffScale as exc:
        return Unparsable(str(exc))
    return ParsedVerdict(value, reasoning, source)


def _reasoning(obj: dict[str, Any]) -> str:
    for key in REASONING_KEYS:
        value = obj.get(key)
        if isinstance(value, str):
            return value.strip()
    return ""


def _last_embedded(text: str, key: str) -> dict[str, Any] | None:
    # The object that ends last is the judge's final word; among objects ending at the same
    # place (nested ones) the outermost wins, so a quoted inner object cannot stand in for it.
    decoder = json.JSONDecoder()
    starts = [match.start() for match in re.finditer(r"\{", text)][-_MAX_OBJECT_STARTS:]
    best: tuple[int, int, dict[str, Any]] | None = None
    for start in starts:
        try:
            obj, end = decoder.raw_decode(text, start)
        except (ValueError, RecursionError):
            continue
        if isinstance(obj, dict) and key in obj and (best is None or (end, -start) > best[:2]):
            best = (end, -start, obj)
    return best[2] if best else None


def _json_object(text: str) -> dict[str, Any] | None:
    stripped = text.strip()
    if not stripped.startswith("{"):
        return None
    try:
        value = json.loads(stripped)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _unfenced(text: str) -> str:
    match = _FENCE.match(text)
    return match.group(1) if match else text


def _tool_arguments(message: dict[str, Any]) -> list[str]:
    calls = message.get("tool_calls")
    if not isinstance(calls, list):
        return []
    found: list[str] = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        arguments = function.get("arguments") if isinstance(function, dict) else None
        if isinstance(arguments, dict):
            arguments = json.dumps(arguments)
        if isinstance(arguments, str):
            found.append(arguments)
    return found


def _finish_reason(reply: ModelReply) -> str | None:
    choices = reply.data.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else None
    reason = first.get("finish_reason") if isinstance(first, dict) else None
    return reason if isinstance(reason, str) else None


def _whole_number(raw: Any) -> int:
    if isinstance(raw, bool):
        raise OffScale(f"score {_shown(raw)} is not a number")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str):
        raw = _number_in(raw.strip().strip("\"'*[]"))
    if not isinstance(raw, int | float):
        raise OffScale(f"score {_shown(raw)} is not a number")
    if isinstance(raw, float) and (not math.isfinite(raw) or not raw.is_integer()):
        raise OffScale(f"score {_shown(raw)} is not a whole number on the scale")
    return int(raw)


def _number_in(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def _matches(text: str, patterns: tuple[str, ...]) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for pattern in patterns:
        for match in re.finditer(pattern, text, re.IGNORECASE):
            found.append((match.start(1), match.group(1)))
    return found


def _shown(value: Any) -> str:
    shown = repr(value) if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return _clip(shown)


def _clip(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
