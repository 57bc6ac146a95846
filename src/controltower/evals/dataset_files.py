"""Dataset files in: JSONL, JSON, CSV, OpenAI Evals samples and promptfoo test CSVs, read into
`DatasetItem`s, with every problem reported at once as `PATH:LINE: problem; fix: ...`.

What each format of `FORMATS` maps to `DatasetItem {id, input, variables, expected, metadata}`:

- `jsonl`: one JSON object a line, `{id?, input | variables, expected?, metadata?}`. When a
  key is absent an alias stands in for it, and a note says so: `question` or `prompt` for
  `input`, `vars` for `variables`, `expected_output`, `ideal`, `target`, `reference` or
  `answer` for `expected`. Other top-level keys are kept in `metadata` under their own name,
  except a key that looks like a misspelt one (`expeted`, `Input`): that is an error.
- `json`: a JSON array of those objects.
- `openai-evals`: OpenAI Evals `samples.jsonl`, `{"input": ..., "ideal": ...}`, where `input`
  (text or chat messages) is required. `ideal` is an answer or a list of acceptable ones: the
  first is `expected`, and a list of two or more is also kept whole in `metadata.ideal` (so
  it is in every format; the OpenAI Evals export writes it back).
- `csv`: a header row, then an item a row. Columns `id`, `input` and `expected` (or their
  aliases), `variables` and `metadata` (JSON objects), `metadata.KEY` (one metadata value);
  every other column is a template variable. Cells are text, except that cells of the
  `expected`, `variables` and `metadata` columns starting with `{` or `[` are parsed as JSON
  (an `expected` cell that is not valid JSON stays text). An empty cell is an absent value,
  except in a variable column, where it is the empty string. A header with tabs and no
  commas makes a tab-separated file.
- `promptfoo-csv`: promptfoo's test CSV (as its `testCaseFromCsvRow` reads it). Each column
  not named below is a variable, as text (a `__` column promptfoo does not know is one too,
  as there). `__expected`, `__expected1`, ... (any name starting `__expected`) hold one
  assertion each (`contains: foo`, `not-icontains: x`, `similar(0.8): text`, `llm-rubric:
  ...`, `grade:`, `fn:`, `python:`, `file://...`; a plain value means `equals`), kept in order
  as promptfoo's `{type, value, threshold?, metric?}` in `metadata.promptfoo.assert`; the value
  of the first one that states a reference answer (`equals`, `similar`, `factuality`,
  `levenshtein`, `rouge-n`, `bleu`, ..., not negated) is `expected`, so `contains: foo` alone
  gives none. `__description` is `metadata.description`; `__metadata:KEY` is `metadata.KEY`,
  and `__metadata:KEY[]` a list split at commas (`\\,` escapes one). `__prefix`, `__suffix`,
  `__providerOutput` and `__threshold` (a number) go into `metadata.promptfoo`; `__metric`
  names each assertion's `metric`; `__config:__expectedN:threshold` sets that assertion's
  `threshold`. A bare `__metadata` column is ignored, as promptfoo does; a reserved name with
  one underscore (`_expected`) is an error, as it is surely a typo. Empty `__` cells are absent.

Ids: `id` when given (non-empty text, or an integer made text; at most 200 characters), else
the first 16 hex digits of the sha256 of the item's content, so that reading a file again
gives the same ids. One id twice in a file is an error naming both lines. CSV rows are
numbered by the physical line they start on (a quoted cell may span lines).

Limits: UTF-8 only (a BOM and CRLF line ends are fine). Refused, naming the line: NUL bytes,
bytes that are not UTF-8, a record over 8 MiB, integers beyond 64 bits, numbers beyond a
double, `NaN`, a key twice in one object, and nesting deeper than 64 levels. JSONL and CSV
files are read a line at a time; a JSON array, whole (up to 256 MiB).
"""

from __future__ import annotations

import difflib
import io
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from controltower.domain.dataset import MAX_ITEM_ID, DatasetItem, item_hash, items_hash
from controltower.evals.dataset_csv import csv_kind, csv_records, promptfoo_records
from controltower.evals.dataset_export import EXPORT_FORMATS, dump_jsonl
from controltower.evals.dataset_text import (
    DECODER,
    FIELDS,
    MAX_JSON_BYTES,
    MAX_RECORD_BYTES,
    At,
    DatasetFileError,
    Records,
    Sink,
    kind,
    report_json,
    resolve_fields,
    scalar_problem,
    show,
    text_lines,
    value_problem,
)

__all__ = [
    "EXPORT_FORMATS",
    "FORMATS",
    "DatasetFile",
    "DatasetFileError",
    "detect_format",
    "dump_jsonl",
    "item_from_record",
    "items_hash",
    "parse_dataset",
    "parse_items",
    "read_dataset",
    "read_items",
]

FORMATS = ("jsonl", "csv", "json", "openai-evals", "promptfoo-csv")
ROLES = ("system", "developer", "user", "assistant", "tool")
_KNOWN_KEYS = (*FIELDS, *(alias for aliases in FIELDS.values() for alias in aliases))
_JSON_SPACE = re.compile(r"[ \t\r\n]*")


@dataclass(frozen=True, slots=True)
class DatasetFile:
    """A file's items, the format they were read as, the line each item starts on (for
    annotations that point at it), and notes on how it was read (aliases, moved keys)."""

    items: list[DatasetItem]
    format: str
    lines: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def read_dataset(path: Path, fmt: str | None = None) -> DatasetFile:
    """Read a dataset file; `fmt` None: the format is told from its name and first bytes."""
    try:
        with path.open("rb") as stream:
            if fmt is None:
                fmt = detect_format(path, stream.read(64 * 1024).decode("utf-8", "replace"))
                stream.seek(0)
            return _read_stream(stream, str(path), fmt)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        fix = "check the path and its permissions"
        raise DatasetFileError([f"{path}: cannot read the file ({reason}); fix: {fix}"]) from None


def read_items(path: Path, fmt: str | None = None) -> list[DatasetItem]:
    """The items of a dataset file; `fmt` None: told from its name and first bytes."""
    return read_dataset(path, fmt).items


def parse_dataset(data: str | bytes, source: str, fmt: str) -> DatasetFile:
    """Parse a whole file's text or bytes in `fmt`; `source` names the file in problems."""
    # one path for both: a lone surrogate in `str` becomes bytes that are reported as not UTF-8
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    return _read_stream(io.BytesIO(raw), source, fmt)


def parse_items(data: str | bytes, source: str, fmt: str) -> list[DatasetItem]:
    """The items of a file's text or bytes in `fmt`; `source` names the file in problems."""
    return parse_dataset(data, source, fmt).items


def item_from_record(record: Mapping[str, Any], where: str) -> DatasetItem:
    """One record (a parsed JSON object) checked and made an item; `where` prefixes problems."""
    sink = Sink(where)
    built = _Record(sink, At(None)).build(record)
    sink.check()
    assert built is not None  # no problem was reported, so there is an item
    return built[0]


def detect_format(path: Path, head: str) -> str:
    """The format of a file, from its suffix and `head`, its first few KiB as text."""
    head = head.removeprefix("\ufeff")
    suffix = path.suffix.lower()
    first = head.lstrip()[:1]
    first_line = head.partition("\n")[0]
    if suffix in (".csv", ".tsv"):
        return csv_kind(first_line)
    if suffix in (".jsonl", ".ndjson", ".jsonlines"):
        return _jsonl_kind(first_line)
    if first == "[":
        return "json"
    if suffix == ".json" or first == "{":
        return _jsonl_kind(first_line)
    if "," in first_line or "\t" in first_line:
        return csv_kind(first_line)
    fix = f"name it .jsonl, .json or .csv, or give its format ({', '.join(FORMATS)})"
    raise DatasetFileError([f"{path}: cannot tell the file's format; fix: {fix}"])


def _jsonl_kind(first_line: str) -> str:
    try:
        first = DECODER.decode(first_line)
    except (ValueError, RecursionError):
        return "jsonl"
    evals = isinstance(first, dict) and "input" in first and "ideal" in first
    return "openai-evals" if evals and "expected" not in first else "jsonl"


# --- records ----------------------------------------------------------------------------


class _Record:
    """Checks one record and makes it an item, adding each of its problems to the sink."""

    def __init__(self, sink: Sink, at: At) -> None:
        self.sink, self.at, self.ok = sink, at, True

    def add(self, problem: str, fix: str) -> None:
        self.ok = False
        self.sink.add(self.at, problem, fix)

    def build(self, record: Any, *, need_input: bool = False) -> tuple[DatasetItem, bool] | None:
        """The item and whether its id was derived from its content; None if reported."""
        if not isinstance(record, Mapping) or not all(isinstance(key, str) for key in record):
            fix = 'write {"input": "...", "expected": "..."}'
            self.add(f"a record must be a JSON object with text keys (got {kind(record)})", fix)
            return None
        keys = self._fields(record)
        values = {name: record[key] for name, key in keys.items()}
        extra = {key: value for key, value in record.items() if key not in keys.values()}
        metadata = self._metadata(values.get("metadata"), extra)
        expected = self._expected(keys.get("expected"), values.get("expected"), metadata)
        item_input, variables = values.get("input"), values.get("variables")
        self._check_input(keys.get("input", "input"), item_input)
        if variables is not None and not isinstance(variables, dict):
            self.add(f"`variables` must be an object (got {kind(variables)})", 'write {"x": 1}')
        self._check_needs(item_input, variables, need_input)
        content = {"input": item_input, "variables": variables or {}, "expected": expected}
        content["metadata"] = metadata
        for name, value in content.items():
            if (problem := value_problem(value, 2)) is not None:
                self.add(f"`{keys.get(name, name)}` {problem[0]}", problem[1])
        item_id, derived = self._id(values.get("id")), False
        if not self.ok:
            return None
        if item_id is None:
            item_id = item_hash(DatasetItem("", **content))[:16]
            derived = True
        item = DatasetItem(item_id, item_input, content["variables"], expected, metadata)
        return item, derived

    def _fields(self, record: Mapping[str, Any]) -> dict[str, str]:
        keys, problems = resolve_fields(record)
        for problem, fix in problems:
            self.add(problem, fix)
        for name, key in keys.items():
            if key != name:
                self.sink.notes[f"`{key}` read as `{name}`"] += 1
        return keys

    def _metadata(self, given: Any, extra: dict[str, Any]) -> dict[str, Any]:
        if given is not None and not isinstance(given, dict):
            self.add(f"`metadata` must be an object (got {kind(given)})", 'write {"k": "v"}')
        metadata = dict(given) if isinstance(given, dict) else {}
        for key, value in extra.items():
            typo = difflib.get_close_matches(key.lower(), _KNOWN_KEYS, n=1, cutoff=0.8)
            if typo and key not in _KNOWN_KEYS:
                fix = f"rename it to `{typo[0]}`, or move it into `metadata`"
                self.add(f"unknown key {show(key)}: is it a misspelt `{typo[0]}`?", fix)
            elif key in metadata:
                self.add(f"`{key}` is a key of both the record and its metadata", "keep one")
            else:
                metadata[key] = value
                self.sink.notes[f"`{key}` kept in metadata"] += 1
        return metadata

    def _expected(self, key: str | None, value: Any, metadata: dict[str, Any]) -> Any:
        if key != "ideal" or not isinstance(value, list):
            return value
        if not value:
            self.add("`ideal` is an empty list", "give at least one acceptable answer")
            return None
        if len(value) > 1 and all(isinstance(answer, str) for answer in value):
            if "ideal" in metadata:
                self.add("`ideal` is also a key of the metadata", "rename that key")
            metadata["ideal"] = value
            self.sink.notes["`ideal` lists several answers, all kept in `metadata.ideal`"] += 1
        return value[0] if isinstance(value[0], str) else value

    def _check_input(self, key: str, value: Any) -> None:
        if value is None or isinstance(value, str | dict):
            return
        if not isinstance(value, list):
            fix = 'write text ("What is 2+2?") or chat messages'
            self.add(f"`{key}` must be text, chat messages or an object (got {kind(value)})", fix)
            return
        if not value:
            self.add(f"`{key}` is an empty list of messages", 'add {"role": "user", ...}')
        for index, message in enumerate(value):
            self._check_message(f"{key}[{index}]", message)

    def _check_message(self, label: str, message: Any) -> None:
        if not isinstance(message, dict):
            fix = 'write {"role": "user", "content": "..."}'
            self.add(f"`{label}` must be a chat message (got {kind(message)})", fix)
            return
        role = message.get("role")
        if role not in ROLES:
            got = "is missing" if role is None else f"is {show(role)}"
            self.add(f"`{label}.role` {got}", f"use one of {', '.join(ROLES)}")
        content = message.get("content")
        calls = role == "assistant" and bool(message.get("tool_calls"))
        if not isinstance(content, str | list) and not (content is None and calls):
            fix = 'write "content": "..." (or a list of content parts)'
            self.add(f"`{label}.content` must be text (got {kind(content)})", fix)

    def _check_needs(self, item_input: Any, variables: Any, need_input: bool) -> None:
        if need_input and item_input is None:
            self.add("an OpenAI Evals sample needs an `input`", 'add "input": [{"role": ...}]')
        elif item_input is None and not variables:
            fix = 'add "input": "..." (or "variables": {...} for a prompt template)'
            self.add("the record has neither an `input` nor `variables`", fix)

    def _id(self, value: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool) and not scalar_problem(value):
            return str(value)
        if not isinstance(value, str):
            self.add(f"`id` must be text or a 64-bit integer (got {kind(value)})", 'write "q-1"')
        elif not value.strip() or value != value.strip():
            self.add(f"`id` {show(value)} is empty or has spaces around it", "trim it")
        elif len(value) > MAX_ITEM_ID or not value.isprintable():
            fix = f"shorten it to at most {MAX_ITEM_ID} characters, without line breaks"
            self.add(f"`id` {show(value)} is too long or holds control characters", fix)
        else:
            return value
        return None


# --- JSONL and JSON ---------------------------------------------------------------------


def _jsonl_records(stream: IO[bytes], sink: Sink) -> Records:
    hint = "make each line one complete JSON object (a pretty-printed array is a .json file)"
    for number, text, ok in text_lines(stream, sink):
        if ok and (text := text.strip(" \t\r\n")):
            try:
                value = DECODER.decode(text)
            except (ValueError, RecursionError) as exc:
                report_json(exc, At(number), sink, hint)
                continue
            yield At(number), value


def _json_records(stream: IO[bytes], sink: Sink) -> Records:
    chunks: list[str] = []
    size = 0
    for _, text, _ok in text_lines(stream, sink, MAX_JSON_BYTES):
        chunks.append(text)
        size += len(text)
        if size > MAX_JSON_BYTES:
            sink.add(At(None), "the JSON file is larger than 256 MiB", "write it as JSONL")
            return
    if not sink.problems:  # else the bytes that did not decode are reported: stop there
        yield from _json_array("".join(chunks), sink)


def _json_array(text: str, sink: Sink) -> Records:
    lines = _LineCounter(text)
    pos = _skip_space(text, 0)
    if not text.startswith("[", pos):
        fix = "wrap the items in [ ... ], or write JSONL: one object a line"
        sink.add(At(lines.at(pos)), "a JSON dataset must be an array of items", fix)
        return
    pos, index = _skip_space(text, pos + 1), 0
    while not text.startswith("]", pos):
        at = At(lines.at(pos), index)
        try:
            value, end = DECODER.raw_decode(text, pos)
        except (ValueError, RecursionError) as exc:
            if isinstance(exc, json.JSONDecodeError):
                at = At(exc.lineno, index)
            report_json(exc, at, sink, "check the JSON")
            return
        if end - pos > MAX_RECORD_BYTES:
            sink.add(at, "the item is longer than 8 MiB", "keep large values out of the dataset")
        else:
            yield at, value
        pos, index = _skip_space(text, end), index + 1
        if text.startswith(",", pos):
            pos = _skip_space(text, pos + 1)
        elif not text.startswith("]", pos):
            sink.add(At(lines.at(pos)), "expected `,` or `]` after an item", "check the JSON")
            return
    if _skip_space(text, pos + 1) < len(text):
        sink.add(At(lines.at(pos)), "text after the closing `]`", "remove it")


def _skip_space(text: str, pos: int) -> int:
    match = _JSON_SPACE.match(text, pos)
    return match.end() if match else pos


class _LineCounter:
    """Line numbers of increasing offsets into one text, each newline counted once."""

    def __init__(self, text: str) -> None:
        self.text, self.pos, self.line = text, 0, 1

    def at(self, pos: int) -> int:
        self.line += self.text.count("\n", self.pos, pos)
        self.pos = pos
        return self.line


# --- one file ---------------------------------------------------------------------------

_READERS: dict[str, Callable[[IO[bytes], Sink], Records]] = {
    "jsonl": _jsonl_records,
    "openai-evals": _jsonl_records,
    "json": _json_records,
    "csv": csv_records,
    "promptfoo-csv": promptfoo_records,
}


def _read_stream(stream: IO[bytes], source: str, fmt: str) -> DatasetFile:
    reader = _READERS.get(fmt)
    if reader is None:
        fix = f"use one of {', '.join(FORMATS)}"
        raise DatasetFileError([f"{source}: unknown dataset format {fmt!r}; fix: {fix}"])
    sink = Sink(source)
    items: list[DatasetItem] = []
    lines: list[int] = []
    seen: dict[str, tuple[At, bool]] = {}
    for at, record in reader(stream, sink):
        built = _Record(sink, at).build(record, need_input=fmt == "openai-evals")
        if built is None:
            continue
        item, derived = built
        if item.id in seen:
            sink.add(at, *_duplicate(item.id, seen[item.id][0], derived))
            continue
        seen[item.id] = (at, derived)
        items.append(item)
        lines.append(at.line or 0)
    sink.check()
    return DatasetFile(items, fmt, lines, sink.summary())


def _duplicate(item_id: str, first: At, derived: bool) -> tuple[str, str]:
    where = f"line {first.line}" + ("" if first.item is None else f" (item {first.item})")
    if derived:
        problem = f"the same record as {where} (a record without an `id` gets one from its content)"
        return problem, "remove the copy, or give each record its own `id`"
    return f"the id {show(item_id)} is also the id of {where}", "give each record its own `id`"
