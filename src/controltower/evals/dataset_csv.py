"""CSV dataset files, and promptfoo test CSVs, read as records (see `dataset_files`)."""

from __future__ import annotations

import csv
import itertools
import math
import re
from collections.abc import Iterator
from typing import IO, Any

from controltower.evals.dataset_text import (
    DECODER,
    MAX_RECORD_BYTES,
    At,
    Records,
    Sink,
    resolve_fields,
    show,
    text_lines,
)


def csv_kind(first_line: str) -> str:
    try:
        header = next(csv.reader([first_line]), [])
    except csv.Error:
        return "csv"
    return "promptfoo-csv" if any(name.strip().startswith("__") for name in header) else "csv"


# --- CSV --------------------------------------------------------------------------------

Rows = Iterator[tuple[int, list[str]]]


def _csv_rows(stream: IO[bytes], sink: Sink) -> Rows:
    """Each non-blank row and the physical line it starts on."""
    if csv.field_size_limit() < MAX_RECORD_BYTES:  # the default, 128 KiB, is too small a cell
        csv.field_size_limit(MAX_RECORD_BYTES)
    texts = (text for _, text, _ in text_lines(stream, sink))
    first = next(texts, None)
    if first is None:
        return
    delimiter = "\t" if "\t" in first and "," not in first else ","
    chained = itertools.chain([first], texts)
    reader = csv.reader(chained, delimiter=delimiter, strict=True, skipinitialspace=True)
    start = 1
    try:
        for row in reader:
            if sum(len(cell) for cell in row) > MAX_RECORD_BYTES:
                sink.add(At(start), "the row is longer than 8 MiB", "keep large values out")
            elif any(cell.strip() for cell in row):
                yield start, row
            start = reader.line_num + 1
    except csv.Error as exc:
        sink.add(At(start), *_csv_problem(str(exc)))


def _csv_problem(message: str) -> tuple[str, str]:
    if "end of data" in message or "field limit" in message:
        problem = "a quoted cell is not closed (or a cell is longer than 8 MiB)"
        return problem, 'close the quote; a quote inside a quoted cell is doubled ("")'
    fix = "quote cells that hold commas, quotes or line breaks, and double the quotes inside"
    return f"malformed CSV ({message})", fix


def _csv_header(rows: Rows, sink: Sink) -> list[str] | None:
    """The stripped column names of the header row; None for an empty file, or if reported."""
    first = next(rows, None)
    if first is None:
        return None
    names = [name.strip() for name in first[1]]
    for index, name in enumerate(names):
        if not name:
            sink.add(At(first[0]), f"column {index + 1} has no name", "name it, or delete it")
        elif names.index(name) != index:
            sink.add(At(first[0]), f"two columns are named {show(name)}", "rename one")
    return None if sink.problems else names


def _csv_cells(rows: Rows, width: int, sink: Sink) -> Iterator[tuple[At, list[str]]]:
    for line, cells in rows:
        if len(cells) == width:
            yield At(line), cells
        else:
            problem = f"the row has {len(cells)} cell{'s' * (len(cells) != 1)}, the header {width}"
            sink.add(At(line), problem, "quote cells that hold commas; give each column a cell")


def csv_records(stream: IO[bytes], sink: Sink) -> Records:
    rows = _csv_rows(stream, sink)
    names = _csv_header(rows, sink)
    if names is None:
        return
    keys, problems = resolve_fields(names)
    for problem, fix in problems:
        sink.add(At(1), problem, fix)
    if problems:
        return
    variables = [n for n in names if n not in keys.values() and not n.startswith("metadata.")]
    if variables:
        sink.file_notes.append(f"columns read as variables: {', '.join(variables)}")
    for at, cells in _csv_cells(rows, len(names), sink):
        yield at, _csv_record(dict(zip(names, cells, strict=True)), keys)


def _csv_record(row: dict[str, str], keys: dict[str, str]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for name, key in keys.items():
        cell = row.pop(key)
        if cell.strip():
            record[key] = (
                cell if name == "input" else cell.strip() if name == "id" else _cell_json(cell)
            )
    metadata = record.setdefault(keys.get("metadata", "metadata"), {})
    variables = record.setdefault(keys.get("variables", "variables"), {})
    for column, cell in row.items():  # a key already in the JSON cell is not overwritten
        if not column.startswith("metadata."):
            if isinstance(variables, dict):
                variables.setdefault(column, cell)
        elif cell and isinstance(metadata, dict):
            metadata.setdefault(column.removeprefix("metadata."), cell)
    return record


def _cell_json(cell: str) -> Any:
    if cell.lstrip()[:1] not in ("{", "["):
        return cell
    try:
        return DECODER.decode(cell)
    except (ValueError, RecursionError):
        return cell  # text after all (a `metadata` or `variables` cell is then reported)


# --- promptfoo --------------------------------------------------------------------------

# promptfoo's assertion types (its BaseAssertionTypesSchema and special types, 2024-2026); a
# `word:` prefix that is not one of them is part of a plain `equals` value, as in promptfoo.
# Word lists, as a list literal would be a line each.
_ASSERTION_TYPES = """
answer-relevance bleu classifier contains contains-all contains-any contains-html
contains-json contains-sql contains-xml context-faithfulness context-recall context-relevance
conversation-relevance cost equals factuality finish-reason g-eval gleu guardrails human
icontains icontains-all icontains-any is-html is-json is-refusal is-sql is-valid-function-call
is-valid-openai-function-call is-valid-openai-tools-call is-xml javascript latency levenshtein
llm-rubric max-score meteor model-graded-closedqa model-graded-factuality moderation perplexity
perplexity-score pi python regex rouge-l rouge-n rouge-s ruby search-rubric select-best similar
similar:cosine similar:dot similar:euclidean skill-used starts-with tool-call-f1
trace-error-spans trace-span-count trace-span-duration trajectory:goal-success
trajectory:step-count trajectory:tool-args-match trajectory:tool-sequence trajectory:tool-used
webhook word-count
""".split()  # noqa: SIM905
_ASSERTION = re.compile(
    r"(not-)?("
    + "|".join(map(re.escape, sorted(_ASSERTION_TYPES, key=len, reverse=True)))
    + r")(?:\((\d+(?:\.\d+)?)\))?(?::(.*))?",
    re.DOTALL,
)
_LEGACY_PREFIXES = {"fn:": "javascript", "eval:": "javascript", "grade:": "llm-rubric"}
_LIST_VALUED = ("contains-all", "contains-any", "icontains-all", "icontains-any")
# the assertions whose value is a reference answer: the first one gives `expected`
_REFERENCE_TYPES = """
equals bleu factuality gleu levenshtein meteor model-graded-factuality rouge-n similar
similar:cosine similar:dot similar:euclidean
""".split()  # noqa: SIM905
_OPTIONS = {
    "__prefix": "prefix",
    "__suffix": "suffix",
    "__metric": "metric",
    "__providerOutput": "providerOutput",
    "__provider_output": "providerOutput",
    "__threshold": "threshold",
}
_ROLE_OF = {"__description": "description", "__metadata": "ignore"} | dict.fromkeys(
    _OPTIONS, "option"
)
# a reserved name with one underscore: surely a typo (promptfoo warns about these)
_ONE_UNDERSCORE = re.compile(
    r"_(expected\d*|description|prefix|suffix|metric|threshold|providerOutput|provider_output)"
    r"|_(metadata|config):.*",
    re.DOTALL,
)


def _promptfoo_assertion(text: str) -> dict[str, Any]:
    """An `__expected` cell (`contains: foo`, `similar(0.8): hi`, `Paris`) as promptfoo's
    assertion `{"type": ..., "value"?: ..., "threshold"?: ...}`."""
    for prefix, kind in _LEGACY_PREFIXES.items():
        if text.startswith(prefix):
            return {"type": kind, "value": text.removeprefix(prefix).strip()}
    path = text.removeprefix("file://").strip()
    if text.startswith("file://") and (path.endswith(".py") or ".py:" in path):
        return {"type": "python", "value": path}
    if text.startswith("file://") and re.search(r"\.[jt]s(:|$)", path):
        return {"type": "javascript", "value": path}
    match = _ASSERTION.fullmatch(text)
    if match is None:
        return {"type": "equals", "value": text}
    negate, kind, threshold, value = match.groups()
    assertion: dict[str, Any] = {"type": f"{negate or ''}{kind}"}
    if value is not None:
        value = value.strip()
        assertion["value"] = (
            [v.strip() for v in value.split(",")] if kind in _LIST_VALUED else value
        )
    if threshold is not None:
        assertion["threshold"] = float(threshold)
    return assertion


class _PromptfooRow:
    """Maps the rows of one promptfoo test CSV, whose header it checks, to records."""

    def __init__(self, names: list[str], sink: Sink) -> None:
        self.names, self.sink = names, sink
        self.roles = [self._role(name) for name in names]

    def _role(self, name: str) -> str:
        if name.startswith("__expected"):
            return "assert"
        if name.startswith("__metadata:"):
            return self._metadata_role(name)
        if name.startswith("__config:"):
            return self._config(name)
        if name == "__metadata":
            self.sink.file_notes.append("the `__metadata` column names no key: it was ignored")
        elif _ONE_UNDERSCORE.fullmatch(name):
            self.sink.add(At(1), f"column `{name}` has one leading underscore", f"use `_{name}`")
        return _ROLE_OF.get(name, "var")  # other columns, `__` ones too, are variables

    def _metadata_role(self, name: str) -> str:
        key = name.removeprefix("__metadata:").removesuffix("[]")
        if not key:
            self.sink.add(At(1), f"`{name}` names no key", "write `__metadata:KEY`")
        elif key == "promptfoo" or (key == "description" and "__description" in self.names):
            self.sink.add(At(1), f"`{name}` would overwrite `metadata.{key}`", "rename it")
        return "meta"

    def _config(self, name: str) -> str:
        target, _, key = name.removeprefix("__config:").partition(":")
        if key != "threshold":
            fix = "write `__config:__expected:threshold`"
            self.sink.add(At(1), f"`{name}`: `__config` sets only an assertion's threshold", fix)
        elif self._config_target(target) is None:
            fix = "name one of the file's `__expected` columns"
            self.sink.add(At(1), f"`{name}` names no `__expected` column of this file", fix)
        return "config"

    def _config_target(self, target: str) -> str | None:
        if target == "__expected" and target not in self.names:
            target = "__expected1"  # promptfoo: `__expected` is the first assertion
        ok = re.fullmatch(r"__expected\d*", target) is not None and target in self.names
        return target if ok else None

    def record(self, at: At, cells: list[str]) -> dict[str, Any]:
        """The record of one row: its `variables`, `metadata` and maybe `expected`."""
        variables: dict[str, str] = {}
        metadata: dict[str, Any] = {}
        options: dict[str, Any] = {}
        asserts: dict[str, dict[str, Any]] = {}
        for name, role, cell in zip(self.names, self.roles, cells, strict=True):
            if role == "var":
                variables[name] = cell
            elif not cell.strip() or role == "ignore":  # an empty `__` cell is absent
                continue
            elif role == "assert":
                asserts[name] = _promptfoo_assertion(cell.strip())
            elif role == "description":
                metadata["description"] = cell
            elif role == "meta":
                metadata.update(_promptfoo_metadata(name.removeprefix("__metadata:"), cell))
            elif _OPTIONS.get(name) == "threshold" or role == "config":
                self._threshold(at, name, cell, options)
            else:
                options[_OPTIONS[name]] = cell
        return _promptfoo_record(variables, metadata, options, asserts)

    def _threshold(self, at: At, name: str, cell: str, options: dict[str, Any]) -> None:
        try:
            value = float(cell)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            self.sink.add(at, f"`{name}` must be a number (got {show(cell)})", "write e.g. 0.8")
        elif name == "__threshold":
            options["threshold"] = value
        else:
            target = self._config_target(name.removeprefix("__config:").partition(":")[0])
            options.setdefault("thresholds", {})[target] = value


def _promptfoo_record(
    variables: dict[str, str],
    metadata: dict[str, Any],
    options: dict[str, Any],
    asserts: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    metric, thresholds = options.pop("metric", None), options.pop("thresholds", {})
    for name, assertion in asserts.items():
        if name in thresholds:
            assertion["threshold"] = thresholds[name]
        if metric is not None:
            assertion["metric"] = metric
    if asserts:
        options["assert"] = list(asserts.values())
    if options:
        metadata["promptfoo"] = options
    record: dict[str, Any] = {"variables": variables, "metadata": metadata}
    for assertion in asserts.values():
        if assertion["type"] in _REFERENCE_TYPES and isinstance(assertion.get("value"), str):
            record["expected"] = assertion["value"]
            break
    return record


def _promptfoo_metadata(key: str, cell: str) -> dict[str, Any]:
    if not key.endswith("[]"):
        return {key: cell}
    values = re.split(r"(?<!\\),", cell)
    return {key.removesuffix("[]"): [value.strip().replace("\\,", ",") for value in values]}


def promptfoo_records(stream: IO[bytes], sink: Sink) -> Records:
    rows = _csv_rows(stream, sink)
    names = _csv_header(rows, sink)
    if names is None:
        return
    mapping = _PromptfooRow(names, sink)
    if sink.problems:
        return
    for at, cells in _csv_cells(rows, len(names), sink):
        yield at, mapping.record(at, cells)
