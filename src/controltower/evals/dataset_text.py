"""The text layer of dataset files: the collection of a file's problems and notes, reading it a
line at a time as UTF-8, and JSON decoded within a dataset's limits. `dataset_files` describes
the formats and the limits."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import IO, Any, NamedTuple

from controltower.errors import ControlTowerError

MIB = 1024 * 1024
MAX_RECORD_BYTES = 8 * MIB
MAX_JSON_BYTES = 256 * MIB  # a JSON array is parsed whole; bigger datasets belong in JSONL
MAX_DEPTH = 64
MAX_PROBLEMS = 50
FIELDS: dict[str, tuple[str, ...]] = {  # each field, and the aliases that may stand in for it
    "id": (),
    "input": ("question", "prompt"),
    "variables": ("vars",),
    "expected": ("expected_output", "ideal", "target", "reference", "answer"),
    "metadata": (),
}
_INT_RANGE = (-(2**63), 2**64 - 1)  # what orjson, which writes the exports, can encode
_SURROGATE = re.compile("[\ud800-\udfff]")
_FIX_UTF8 = "save the file as UTF-8 text"


class DatasetFileError(ControlTowerError, ValueError):
    """A dataset file that cannot be read: `problems` are `PATH:LINE: problem; fix: ...` lines."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


# --- problems and notes -----------------------------------------------------------------


class At(NamedTuple):
    line: int | None
    item: int | None = None  # the index in a JSON array, whose items may share a line


class Sink:
    """Collects a file's problems (the first MAX_PROBLEMS, and a count of the rest) and notes."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []
        self.more = 0
        self.notes: Counter[str] = Counter()  # a note, and the number of records it is about
        self.file_notes: list[str] = []

    def add(self, at: At, problem: str, fix: str) -> None:
        if len(self.problems) >= MAX_PROBLEMS:
            self.more += 1
            return
        where = self.source if at.line is None else f"{self.source}:{at.line}"
        item = "" if at.item is None else f"item {at.item}: "
        self.problems.append(f"{where}: {item}{problem}; fix: {fix}")

    def check(self) -> None:
        if self.problems:
            more = [f"... and {self.more} more problems"] if self.more else []
            raise DatasetFileError(self.problems + more)

    def summary(self) -> list[str]:
        counted = [f"{note} ({n} record{'s' * (n != 1)})" for note, n in self.notes.items()]
        return self.file_notes + counted


def kind(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    names = {str: "text", int: "a number", float: "a number", list: "a list", dict: "an object"}
    return names.get(type(value), f"a {type(value).__name__}")


def show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --- lines and JSON ---------------------------------------------------------------------

Line = tuple[int, str, bool]  # number, text ending "\n" (CRLF made LF), and whether it decoded


def text_lines(stream: IO[bytes], sink: Sink, limit: int = MAX_RECORD_BYTES) -> Iterator[Line]:
    """The stream's lines, one at a time; a bad line is reported and yielded as not ok."""
    number = 0
    while raw := stream.readline(limit + 1):
        number += 1
        if number == 1 and raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            sink.add(At(1), "the file is UTF-16 text", _FIX_UTF8)
            return
        if b"\0" in raw:  # a binary file: one problem, rather than one a line
            sink.add(At(number), "the file holds NUL bytes: it is binary, not text", _FIX_UTF8)
            return
        if len(raw) > limit and not raw.endswith(b"\n"):
            fix = "keep large values out of the dataset (store a path or a URL instead)"
            sink.add(At(number), f"the line is longer than {limit // MIB} MiB", fix)
            while (chunk := stream.readline(MIB)) and not chunk.endswith(b"\n"):
                pass
            yield number, "\n", False
            continue
        text, ok = _decode_line(raw.removeprefix(b"\xef\xbb\xbf"), At(number), sink)
        yield number, text, ok


def _decode_line(raw: bytes, at: At, sink: Sink) -> tuple[str, bool]:
    try:
        text, ok = raw.decode("utf-8"), True
    except UnicodeDecodeError as exc:
        problem = f"byte {exc.start + 1} of the line (0x{raw[exc.start]:02x}) is not UTF-8"
        sink.add(at, problem, f"{_FIX_UTF8} (it may be Latin-1 or Windows-1252)")
        text, ok = raw.decode("utf-8", "replace"), False
    return (text[:-2] + "\n" if text.endswith("\r\n") else text), ok


class _JsonProblem(ValueError):
    """A value JSON allows but a dataset cannot hold, met while decoding."""

    def __init__(self, problem: str, fix: str = "write it as text") -> None:
        super().__init__(problem)
        self.problem, self.fix = problem, fix


def _json_int(text: str) -> int:
    # the length first: int() of a 5,000-digit number raises a ValueError of its own
    if len(text.lstrip("-")) > 20 or not _INT_RANGE[0] <= int(text) <= _INT_RANGE[1]:
        raise _JsonProblem(f"the integer {text[:30]} does not fit in 64 bits")
    return int(text)


def _json_float(text: str) -> float:
    if not math.isfinite(value := float(text)):
        raise _JsonProblem(f"the number {text[:30]} is too large for a double")
    return value


def _json_constant(name: str) -> Any:
    raise _JsonProblem(f"`{name}` is not JSON", "write null, a number or text")


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for key, item in pairs:
        if key in value:
            raise _JsonProblem(f"the key {show(key)} appears twice in one object", "keep one")
        value[key] = item
    return value


DECODER = json.JSONDecoder(
    object_pairs_hook=_json_object,
    parse_int=_json_int,
    parse_float=_json_float,
    parse_constant=_json_constant,
)


def report_json(exc: Exception, at: At, sink: Sink, hint: str) -> None:
    if isinstance(exc, _JsonProblem):
        sink.add(at, exc.problem, exc.fix)
    elif isinstance(exc, json.JSONDecodeError):
        sink.add(at, f"not valid JSON: {exc.msg} (column {exc.colno})", hint)
    else:  # RecursionError: far deeper than MAX_DEPTH
        sink.add(at, f"the JSON is nested deeper than {MAX_DEPTH} levels", "flatten it")


def value_problem(value: Any, depth: int) -> tuple[str, str] | None:
    """Why `value`, at nesting `depth`, is not a JSON value a dataset can hold (None: it is)."""
    stack = [(value, depth)]
    while stack:
        node, level = stack.pop()
        if type(node) is str:  # the common case first: this walks every value of every record
            if _SURROGATE.search(node) is not None:
                return "holds a lone UTF-16 surrogate, which is not text", "remove it"
        elif isinstance(node, dict | list):
            if level > MAX_DEPTH:
                return f"is nested deeper than {MAX_DEPTH} levels", "flatten it"
            if isinstance(node, list):
                stack.extend((child, level + 1) for child in node)
            elif all(type(key) is str for key in node):
                stack.extend((child, level + 1) for child in node.values())
            else:
                return "has an object key that is not text", "make every key a string"
        elif (problem := scalar_problem(node)) is not None:
            return problem
    return None


def scalar_problem(node: Any) -> tuple[str, str] | None:
    if node is None or isinstance(node, bool):
        return None
    if isinstance(node, str):
        lone = _SURROGATE.search(node) is not None
        return ("holds a lone UTF-16 surrogate, which is not text", "remove it") if lone else None
    if isinstance(node, int):
        big = not _INT_RANGE[0] <= node <= _INT_RANGE[1]
        return ("holds an integer beyond 64 bits", "write it as text") if big else None
    if isinstance(node, float):
        return None if math.isfinite(node) else ("holds NaN or an infinity", "write a number")
    return f"holds {kind(node)}, not a JSON value", "use text, numbers, lists and objects"


# --- fields and records ---------------------------------------------------------------

Records = Iterator[tuple[At, Any]]  # each record read from a file, and where it starts


def resolve_fields(keys: Iterable[str]) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """The key that holds each field (its own, or its one alias present), and the clashes."""
    present = set(keys)
    chosen: dict[str, str] = {}
    problems: list[tuple[str, str]] = []
    for name, aliases in FIELDS.items():
        found = [name] if name in present else [alias for alias in aliases if alias in present]
        if found:  # on a clash too, so that the field is not also reported missing
            chosen[name] = found[0]
        if len(found) > 1:
            listed = " and ".join(f"`{alias}`" for alias in found)
            problems.append((f"{listed} could each be `{name}`", f"rename one to `{name}`"))
    return chosen, problems
