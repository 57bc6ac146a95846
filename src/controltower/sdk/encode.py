"""Queue items to ingest events (JSON bytes), in the export thread: mask, bound, batch.

Values are serialised here, shortly after the call returned, not copied on the
caller's thread: an object the application mutates right after the call may be
recorded as it is after the mutation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from controltower.sdk.binding import call_input
from controltower.sdk.live import LiveSpan

if TYPE_CHECKING:
    from controltower.sdk.runtime import SdkConfig

log = logging.getLogger("controltower.sdk")

# the common case first: non-string dict keys cost every event half as much again, so
# only the slow path (an event that failed to serialise) allows them
_FAST = orjson.OPT_SERIALIZE_NUMPY
_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
_REPR_LIMIT = 2000
_USAGE_KEYS = ("input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens")
_MASK_FAILED = "<masking failed: value withheld>"
# span fields beyond the basics, exported when set
_DETAILS = frozenset(
    ("status", "error", "model", "provider", "cost", "prompt_name", "prompt_version",
     "parameters", "usage", "first_token_ns", "metadata", "items_dropped")
)  # fmt: skip
# the values the application gave, which may be large or not serialise
_FREE_FORM = ("input", "output", "metadata", "attributes", "parameters")


@dataclass(slots=True)
class Chunk:
    """One HTTP body: `{"batch": [...]}` and, per event, the index of its queue item."""

    body: bytes
    owners: list[int]
    items: int


class Encoder:
    """Turns spans, trace updates and scores into the events of `POST /api/ingest`."""

    def __init__(self, config: SdkConfig) -> None:
        self._mask = config.mask
        self._max_field = config.max_field_bytes
        self._max_batch = config.max_batch_bytes
        self._trace_extra = {
            key: value
            for key, value in (("environment", config.environment), ("release", config.release))
            if value
        }
        self._mask_warned = False

    def encode_batch(self, items: list[Any]) -> tuple[list[Chunk], int]:
        """Chunks of at most max_batch_bytes (an item's events stay together); failures."""
        chunks: list[Chunk] = []
        events: list[bytes] = []
        owners: list[int] = []
        size = failed = count = 0
        limit = self._max_batch
        for item in items:
            try:
                encoded, n = self.encode(item)
            except Exception:
                log.exception("controltower could not encode a %s", type(item).__name__)
                failed += 1
                continue
            if events and size + len(encoded) >= limit:
                chunks.append(_chunk(events, owners, count))
                events, owners, size, count = [], [], 0, 0
            events.append(encoded)
            if n == 1:
                owners.append(count)
            else:
                owners.extend([count] * n)
            size += len(encoded) + 1
            count += 1
        if events:
            chunks.append(_chunk(events, owners, count))
        return chunks, failed

    def encode(self, item: Any) -> tuple[bytes, int]:
        """The events of one queue item, comma-separated, and how many there are."""
        if isinstance(item, LiveSpan):
            return self._span_events(item)
        kind, body = item
        if kind == "trace":
            body = self._trace_update(body)
        return self._event(kind, body), 1

    def _span_events(self, span: LiveSpan) -> tuple[bytes, int]:
        # a span's __dict__ holds only the fields it set (the rest are class defaults),
        # so fields left at their default (kind span, status ok, no parent) cost nothing
        fields = span.__dict__
        end_ns = fields.get("end_ns")
        body: dict[str, Any] = {
            "id": f"{fields['id']:016x}",
            "trace_id": f"{fields['trace_id']:032x}",
            "name": fields["name"],
            "start_us": fields["start_ns"] // 1000,
            "end_us": None if end_ns is None else end_ns // 1000,
        }
        parent_id = fields.get("parent_id")
        if parent_id is not None:
            body["parent_id"] = f"{parent_id:016x}"
        if fields["kind"] != "span":
            body["kind"] = fields["kind"]
        value = fields.get("input")
        if value is None and "args" in fields:
            value = call_input(fields.get("binder"), fields["args"], fields["kwargs"] or {})
        masked = self._mask is not None
        if value is not None:
            body["input"] = self._masked(value) if masked else value
        value = _span_output(span) if "items" in fields else fields.get("output")
        if value is not None:
            body["output"] = self._masked(value) if masked else value
        for key in fields.keys() & _DETAILS:
            self._detail(span, key, body)
        event = self._event("span", body)
        if parent_id is None:
            trace_event = self._root_trace_event(span, body["trace_id"])
            if trace_event is not None:
                return event + b"," + trace_event, 2
        return event, 1

    def _detail(self, span: LiveSpan, key: str, body: dict[str, Any]) -> None:
        value = getattr(span, key)
        if value is None:
            return
        if key == "usage":
            body["usage"] = normalize_usage(value)
        elif key == "first_token_ns":
            body["ttft_us"] = (value - span.start_ns) // 1000
        elif key == "metadata":
            body.setdefault("attributes", {}).update(self._masked_object(value))
        elif key == "items_dropped":
            body.setdefault("attributes", {})["controltower.output_items_dropped"] = value
        else:
            body[key] = value

    def _root_trace_event(self, span: LiveSpan, trace_id: str) -> bytes | None:
        # ingest takes the trace's name, input, output, status and times from the root
        # span itself; this event only carries what update_trace() and init() added
        if not span.trace_fields and not self._trace_extra:
            return None
        return self._event(
            "trace", self._trace_update({"id": trace_id, **(span.trace_fields or {})})
        )

    def _trace_update(self, body: dict[str, Any]) -> dict[str, Any]:
        body = {**body, **self._trace_extra}
        for key in ("input", "output"):
            if body.get(key) is not None:
                body[key] = self._masked(body[key])
        if body.get("metadata") is not None:
            body["metadata"] = self._masked_object(body["metadata"])
        return body

    def _event(self, kind: str, body: dict[str, Any]) -> bytes:
        """One event's JSON; values that are too large or will not serialise are cut."""
        try:
            raw = orjson.dumps({"type": kind, "body": body}, default=_default, option=_FAST)
        except Exception:  # the slow path below serialises each value on its own
            raw = None
        # an event within max_field_bytes cannot hold a field over it: one check suffices
        if raw is None or len(raw) > self._max_field:
            for key in _FREE_FORM:
                if key in body:
                    body[key] = self.field(body[key])
            raw = orjson.dumps({"type": kind, "body": body}, default=_default, option=_OPTIONS)
        return raw

    def field(self, value: Any) -> orjson.Fragment | None:
        """Serialised once and cut to max_field_bytes; None stays None."""
        if value is None:
            return None
        raw = dump(value)
        if len(raw) > self._max_field:
            head = raw[: self._max_field].decode("utf-8", "ignore")
            raw = orjson.dumps(f"{head}… [truncated: {len(raw)} bytes of JSON]")
        return orjson.Fragment(raw)

    def _masked_object(self, value: Any) -> dict[Any, Any]:
        masked = self._masked(value)
        return masked if isinstance(masked, dict) else {"metadata": masked}

    def _masked(self, value: Any) -> Any:
        if self._mask is None:
            return value
        try:
            return self._mask(value)
        except Exception:
            if not self._mask_warned:
                log.exception("the controltower mask hook failed; the value is withheld")
                self._mask_warned = True
            return _MASK_FAILED


def dump(value: Any) -> bytes:
    """JSON of any value: natively, through `_default`, or as its repr when all else fails."""
    try:
        return orjson.dumps(value, default=_default, option=_OPTIONS)
    except Exception:  # an object that will not serialise must not lose the span
        return orjson.dumps(_short_repr(value))


def normalize_usage(usage: Any) -> dict[str, int] | None:
    """Token counts from our keys, OpenAI's keys, a `Usage` or an object with them."""
    if usage is None:
        return None
    get: Callable[[str], Any] = (
        usage.get if isinstance(usage, Mapping) else (lambda key: getattr(usage, key, None))
    )
    found = {
        "input_tokens": _first(get, "input_tokens", "prompt_tokens"),
        "output_tokens": _first(get, "output_tokens", "completion_tokens"),
        "cached_tokens": get("cached_tokens"),
        "reasoning_tokens": get("reasoning_tokens"),
    }
    return {key: int(found[key]) for key in _USAGE_KEYS if isinstance(found[key], int | float)}


def _first(get: Callable[[str], Any], *keys: str) -> Any:
    for key in keys:
        value = get(key)
        if value is not None:
            return value
    return None


def _span_output(span: LiveSpan) -> Any:
    items = span.items
    if items is None:
        return span.output
    if items and all(isinstance(item, str) for item in items):
        return "".join(items)  # a generator streaming text: record the text
    return items


def _chunk(events: list[bytes], owners: list[int], count: int) -> Chunk:
    return Chunk(b'{"batch":[' + b",".join(events) + b"]}", owners, count)


def _default(value: Any) -> Any:
    dump_model = getattr(value, "model_dump", None)
    if callable(dump_model):  # pydantic v2 models, the OpenAI client's objects
        return dump_model(mode="json")
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, AbstractSet | Sequence):
        return list(value)
    return _short_repr(value)


def _short_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__qualname__}>"
    return text if len(text) <= _REPR_LIMIT else text[:_REPR_LIMIT] + "…"
