"""Checked OTLP spans → partial TraceRecords, one per trace id, for both OTLP encodings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from controltower.domain import Span, TraceRecord, now_us
from controltower.domain.trace import MAX_FUTURE_US, trace_of
from controltower.ingest.semconv import SpanEvent, TraceFacts, map_span

_MAX_REASONS = 10  # rejection reasons quoted in the partial-success message
_ENVIRONMENT_KEYS = ("deployment.environment.name", "deployment.environment")
_RELEASE_KEY = "service.version"
_TELEMETRY_SDK = "telemetry.sdk."


class OtlpDecodeError(ValueError):
    """The request body is not an OTLP trace export at all; says what is wrong."""


@dataclass(slots=True)
class Resource:
    """What a resource says about the traces of its spans."""

    environment: str | None = None
    release: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def resource_from(attributes: dict[str, Any]) -> Resource:
    """Environment, release and trace metadata from a resource's attributes."""
    resource = Resource()
    for key in _ENVIRONMENT_KEYS:
        if attributes.get(key):
            resource.environment = str(attributes[key])
            break
    if attributes.get(_RELEASE_KEY):
        resource.release = str(attributes[_RELEASE_KEY])
    skip = {*_ENVIRONMENT_KEYS, _RELEASE_KEY}
    resource.metadata = {
        key: value
        for key, value in attributes.items()
        if key not in skip and not key.startswith(_TELEMETRY_SDK)
    }
    return resource


@dataclass(slots=True)
class OtlpResult:
    """Traces decoded from one export, and the spans that were rejected (and why)."""

    records: list[TraceRecord]
    accepted: int
    rejected: int
    errors: list[str]

    def error_message(self) -> str:
        """The partial-success message: how many spans were rejected and the first reasons."""
        if not self.rejected:
            return ""
        total = self.accepted + self.rejected
        text = f"{self.rejected} of {total} spans rejected: " + "; ".join(self.errors)
        if self.rejected > len(self.errors):
            text += f"; and {self.rejected - len(self.errors)} more"
        return text


@dataclass(slots=True)
class _Piece:
    spans: list[Span] = field(default_factory=list)
    facts: TraceFacts = field(default_factory=TraceFacts)
    resource: Resource | None = None


class Assembler:
    """Collects the spans of one export by trace id; rejects invalid ones with a reason."""

    def __init__(self) -> None:
        self._pieces: dict[str, _Piece] = {}
        self.accepted = 0
        self.rejected = 0
        self.errors: list[str] = []

    def reject(self, where: str, reason: str) -> None:
        """Count a span as rejected, keeping the first reasons for the answer."""
        self.rejected += 1
        if len(self.errors) < _MAX_REASONS:
            self.errors.append(f"{where}: {reason}")

    def add(
        self,
        ids: tuple[str, str, str | None],
        name: str,
        times_ns: tuple[int, int],
        attributes: dict[str, Any],
        events: list[SpanEvent],
        status: tuple[int, str],
        resource: Resource,
        scope: str,
    ) -> str | None:
        """Map and keep one span whose ids are valid; the reason when it is not kept."""
        start_ns, end_ns = times_ns
        problem = _check(name, start_ns, end_ns)
        if problem is None and status[0] not in (0, 1, 2):
            problem = f"status.code must be 0, 1 or 2, got {status[0]}"
        if problem is not None:
            return problem
        trace_id, span_id, parent_id = ids
        span = Span(
            id=span_id,
            trace_id=trace_id,
            name=name,
            kind="span",
            start_us=start_ns // 1000,
            end_us=end_ns // 1000 if end_ns else None,
            parent_id=parent_id,
        )
        piece = self._pieces.get(trace_id)
        if piece is None:
            piece = self._pieces[trace_id] = _Piece()
        if piece.resource is not resource:
            _apply_resource(piece, resource)
        try:
            map_span(span, attributes, events, status, piece.facts)
        except (TypeError, ValueError, AttributeError, KeyError) as exc:
            return f"its attributes could not be mapped ({type(exc).__name__}: {exc})"
        if scope:
            span.attributes["otel.scope.name"] = scope
        piece.spans.append(span)
        self.accepted += 1
        return None

    def result(self) -> OtlpResult:
        """One partial record per trace id, and the rejection counts."""
        records = [_record(trace_id, piece) for trace_id, piece in self._pieces.items()]
        return OtlpResult(records, self.accepted, self.rejected, self.errors)


def _check(name: str, start_ns: int, end_ns: int) -> str | None:
    if not name:
        return "name is missing or empty"
    if start_ns <= 0:
        return "startTimeUnixNano is missing"
    latest = now_us() + MAX_FUTURE_US
    if start_ns // 1000 > latest:
        return f"startTimeUnixNano ({start_ns}) is more than a day in the future"
    if end_ns // 1000 > latest:
        return f"endTimeUnixNano ({end_ns}) is more than a day in the future"
    if end_ns and end_ns < start_ns:
        return f"endTimeUnixNano ({end_ns}) is before startTimeUnixNano ({start_ns})"
    return None


def _apply_resource(piece: _Piece, resource: Resource) -> None:
    piece.resource = resource
    facts = piece.facts
    facts.environment = resource.environment or facts.environment
    facts.release = resource.release or facts.release
    if resource.metadata:
        facts.metadata.update(resource.metadata)


def _record(trace_id: str, piece: _Piece) -> TraceRecord:
    spans, facts = piece.spans, piece.facts
    trace = trace_of(trace_id, spans)
    trace.session_id, trace.user_id = facts.session_id, facts.user_id
    trace.tags, trace.metadata = facts.tags, facts.metadata
    trace.environment, trace.release = facts.environment, facts.release
    return TraceRecord(trace, spans, partial=True)
