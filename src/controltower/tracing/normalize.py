"""Make a trace storable whatever it holds: the trace writer's last line of defence.

The edges (the gateway, `/api/ingest`, OTLP) validate what they can and answer per span;
what still arrives here is made to fit every store: NUL characters and lone surrogates
become U+FFFD, JSON nested deeper than `MAX_DEPTH` is cut, payloads over
`MAX_PAYLOAD_BYTES` (metadata over `MAX_METADATA_BYTES`) become a marked preview, tags
beyond `MAX_TAGS` are dropped, integers fit a 64-bit column, token counts above
`MAX_TOKENS` and costs above `MAX_COST` (so that no sum of them overflows) or not finite
and non-negative are dropped. A value that needs none of this costs one `orjson.dumps` (for
JSON) and a count of its brackets, or two string scans (for text).
"""

from __future__ import annotations

import json
import math
import re
import reprlib
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

import orjson

from controltower.domain import Span, Trace, TraceRecord, Usage
from controltower.domain.trace import INT64_MAX, MAX_COST, MAX_TOKENS

INT64_MIN = -(2**63)
MAX_DEPTH = 64  # JSON nesting kept; deeper values are replaced by a marker
MAX_PAYLOAD_BYTES = 1024 * 1024  # per JSON field (input, output, parameters …) as stored
MAX_METADATA_BYTES = 32 * 1024  # a trace's metadata: it is shown in every list of traces
MAX_TAGS = 100  # of a trace, each at most MAX_TAG_CHARS long
MAX_TAG_CHARS = 200
MAX_TEXT_CHARS = 64 * 1024  # per plain text field (names, ids, errors …)
PREVIEW_CHARS = 16 * 1024  # what is kept of a payload over the cap
TRUNCATED_KEY = "controltower.truncated"  # span attribute / trace metadata: the fields cut
PREVIEW_KEY = "controltower.preview"  # what a mapping cut for its size holds instead
MAX_DEAD_LETTER_CHARS = 1024 * 1024
REPLACEMENT = "\ufffd"

_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
_DEEP = f"[nested deeper than {MAX_DEPTH} levels]"
_JSON_FIELDS = frozenset({"input", "output", "metadata", "tags", "parameters", "attributes"})
_LIMITS = {"metadata": MAX_METADATA_BYTES}
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxstring = 12, 200, 200, 10_000
_REPR.maxother = 10_000


def normalize_record(record: TraceRecord) -> bool:
    """Make every field of the trace and its spans storable, in place; whether any changed."""
    changed = _normalize(record.trace)
    for span in record.spans:
        changed = _normalize(span) or changed
    return changed


def clean_text(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    """Text without NUL or lone surrogates (each becomes U+FFFD), at most `limit` chars."""
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    if "\x00" in text or (not text.isascii() and _BAD_TEXT.search(text)):
        text = _BAD_TEXT.sub(REPLACEMENT, text)
    return text


def clean_json(value: Any, depth: int = 0) -> Any:
    """A JSON value every store accepts: text cleaned, depth capped, numbers in range."""
    if isinstance(value, str):
        return clean_text(value, MAX_PAYLOAD_BYTES)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if INT64_MIN <= value <= INT64_MAX else _big_int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict | list | tuple) and depth >= MAX_DEPTH:
        return _DEEP
    if isinstance(value, dict):
        return {clean_text(str(k)): clean_json(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v, depth + 1) for v in value]
    return clean_text(_safe_str(value))


def dead_letter_payload(record: TraceRecord) -> str:
    """The record as ASCII JSON (NUL and surrogates escaped), or a bounded repr when even
    that fails: what an operator reads to see why the record could not be stored."""
    try:
        text = json.dumps(_plain(record), ensure_ascii=True, default=_safe_str)
    except (ValueError, TypeError, RecursionError, OverflowError):
        text = _REPR.repr(record).encode("ascii", "backslashreplace").decode()
    if len(text) > MAX_DEAD_LETTER_CHARS:
        text = text[:MAX_DEAD_LETTER_CHARS] + "…"
    return text


@dataclass(frozen=True, slots=True)
class _Layout:
    """The fields of a trace or span class, by what they hold (read off its annotations)."""

    text: tuple[str, ...]
    ints: tuple[str, ...]
    json: tuple[str, ...]
    costs: tuple[str, ...]
    usage: tuple[str, ...]


def _layout(cls: type) -> _Layout:
    kinds: dict[str, list[str]] = {"text": [], "ints": [], "json": [], "costs": [], "usage": []}
    for f in fields(cls):
        kind = str(f.type).removesuffix(" | None")
        if f.name in _JSON_FIELDS:
            kinds["json"].append(f.name)
        elif kind in ("str", "SpanKind", "Status"):
            kinds["text"].append(f.name)
        elif kind == "int":
            kinds["ints"].append(f.name)
        elif kind == "float":
            kinds["costs"].append(f.name)
        elif kind == "Usage":
            kinds["usage"].append(f.name)
    return _Layout(**{k: tuple(v) for k, v in kinds.items()})


_LAYOUTS = {Trace: _layout(Trace), Span: _layout(Span)}


def _normalize(item: Trace | Span) -> bool:
    layout = _LAYOUTS[type(item)]
    if _fine(item, layout):
        return False
    changed, cut = _normalize_json(item, layout)
    for name in layout.text:
        value = getattr(item, name)
        if value is not None:
            new = clean_text(value if isinstance(value, str) else _safe_str(value))
            changed = _set(item, name, value, new) or changed
    for name in layout.ints:
        value = getattr(item, name)
        if value is not None:
            changed = _set(item, name, value, _int(value, name.endswith("_us"))) or changed
    for name in layout.costs:
        value = getattr(item, name)
        if value is not None:
            changed = _set(item, name, value, storable_cost(value)) or changed
    for name in layout.usage:
        changed = _normalize_usage(getattr(item, name)) or changed
    if cut:
        _mark(item, cut)
    return changed or bool(cut)


def _normalize_json(item: Trace | Span, layout: _Layout) -> tuple[bool, list[str]]:
    """Make the JSON fields storable; (whether any changed, the fields cut for size)."""
    changed = False
    cut: list[str] = []
    for name in layout.json:
        value = getattr(item, name)
        if name == "tags":
            new, was_cut = _tags(value)
        else:
            new, was_cut = _payload(value, _LIMITS.get(name, MAX_PAYLOAD_BYTES))
            if was_cut:
                new = _shaped_like(value, new)
        if was_cut:
            cut.append(name)
        changed = _set(item, name, value, new) or changed
    return changed, cut


def _fine(item: Trace | Span, layout: _Layout) -> bool:
    """Whether every field is storable as it is: the fast path of well-formed records."""
    try:
        dumped = orjson.dumps(tuple(getattr(item, name) for name in layout.json))
    except (TypeError, orjson.JSONEncodeError):
        return False
    if len(dumped) > MAX_PAYLOAD_BYTES or b"\\u0000" in dumped or _deep(dumped, 1):
        return False
    if isinstance(item, Trace) and not _small_labels(item, len(dumped)):
        return False
    for name in layout.text:
        value = getattr(item, name)
        if value is not None and (
            type(value) is not str
            or len(value) > MAX_TEXT_CHARS
            or "\x00" in value
            or (not value.isascii() and _BAD_TEXT.search(value))
        ):
            return False
    for name in layout.ints:
        value = getattr(item, name)
        if value is not None and (type(value) is not int or not 0 <= value <= INT64_MAX):
            return False
    for name in layout.costs:
        value = getattr(item, name)
        if value is not None and storable_cost(value) != value:
            return False
    return all(_usage_fine(getattr(item, name)) for name in layout.usage)


def _set(item: Trace | Span, name: str, old: Any, new: Any) -> bool:
    if new is old or (new == old and type(new) is type(old)):
        return False
    setattr(item, name, new)
    return True


def _int(value: Any, is_time: bool) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        value = int(value)
    return int(min(max(value, 0 if is_time else INT64_MIN), INT64_MAX))


def storable_cost(value: Any) -> float | None:
    """A cost as stored: a number from 0 to MAX_COST (USD), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) and 0 <= number <= MAX_COST else None


def _usage_fine(usage: Usage) -> bool:
    for value in (usage.input_tokens, usage.output_tokens, usage.cached_tokens):
        if value is not None and (type(value) is not int or not 0 <= value <= MAX_TOKENS):
            return False
    value = usage.reasoning_tokens
    return value is None or (type(value) is int and 0 <= value <= MAX_TOKENS)


def _normalize_usage(usage: Usage) -> bool:
    changed = False
    for f in fields(usage):
        value = getattr(usage, f.name)
        if value is None:
            continue
        good = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKENS
        if not good:
            setattr(usage, f.name, None)
            changed = True
    return changed


def _payload(value: Any, limit: int = MAX_PAYLOAD_BYTES) -> tuple[Any, bool]:
    """(a storable JSON value, whether it was cut to a preview for its size)."""
    if value is None:
        return value, False
    try:
        dumped = orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        value = clean_json(value)
        dumped = orjson.dumps(value, default=_safe_str)
    else:
        if b"\\u0000" in dumped or _deep(dumped, 0):
            value = clean_json(value)
            dumped = orjson.dumps(value, default=_safe_str)
    if len(dumped) <= limit:
        return value, False
    preview = dumped[:PREVIEW_CHARS].decode("utf-8", "ignore")
    return clean_text(f"{preview}… [{len(dumped)} bytes, cut to {PREVIEW_CHARS}]"), True


def too_deep(text: str | bytes) -> bool:
    """Whether a JSON text nests deeper than MAX_DEPTH (cheap unless it has many brackets)."""
    if isinstance(text, str):
        if text.count("[") + text.count("{") <= MAX_DEPTH:  # the common case: no encoding
            return False
        text = text.encode()
    return _deep(text, 0)


def _deep(dumped: bytes, wrapped: int) -> bool:
    """Whether JSON text (of values inside `wrapped` levels of their own) may nest deeper
    than MAX_DEPTH: never when it has fewer brackets than that, else by a walk of it."""
    opened = dumped.count(b"[") + dumped.count(b"{")
    if opened - wrapped <= MAX_DEPTH:
        return False
    depth = top = 0
    in_string = escaped = False
    for byte in dumped:  # slow, but only for values with many brackets
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            top = max(top, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return top - wrapped > MAX_DEPTH


def _small_labels(trace: Trace, dumped_bytes: int) -> bool:
    tags = trace.tags
    if len(tags) > MAX_TAGS or any(len(tag) > MAX_TAG_CHARS for tag in tags):
        return False
    # the metadata is part of the fields dumped already: only a larger dump can hold too much
    metadata = trace.metadata
    if not metadata or dumped_bytes <= MAX_METADATA_BYTES:
        return True
    return len(orjson.dumps(metadata)) <= MAX_METADATA_BYTES


def _tags(value: Any) -> tuple[Any, bool]:
    if not isinstance(value, list | tuple):
        return value, False
    kept = [clean_text(t if isinstance(t, str) else _safe_str(t), MAX_TAG_CHARS) for t in value]
    return kept[:MAX_TAGS], len(kept) > MAX_TAGS


def _shaped_like(original: Any, preview: str) -> Any:
    # a mapping field stays a mapping, a list a list, so readers need no new case
    if isinstance(original, dict):
        return {PREVIEW_KEY: preview}
    if isinstance(original, list | tuple):
        return [preview]
    return preview


def _mark(item: Trace | Span, cut: list[str]) -> None:
    if isinstance(item, Span):
        item.attributes = {**item.attributes, TRUNCATED_KEY: cut}
    else:
        item.metadata = {**item.metadata, TRUNCATED_KEY: cut}


def _big_int(value: int) -> float | str:
    try:
        return float(value)
    except OverflowError:
        return "-huge integer" if value < 0 else "huge integer"


def _safe_str(value: Any) -> str:
    try:
        return str(value)
    except Exception:  # a value whose __str__ fails is still set aside, by its type
        return f"<{type(value).__name__}>"


def _plain(value: Any, depth: int = 0) -> Any:
    if depth > 200:
        return _DEEP
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name), depth + 1) for f in fields(value)}
    if isinstance(value, dict):
        return {_safe_str(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, depth + 1) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if callable(value):
        return None
    return value
