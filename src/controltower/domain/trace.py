"""The canonical trace model shared by the gateway, the SDK and ingest."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

INT64_MAX = 2**63 - 1  # the largest integer every store keeps (BIGINT)
MAX_FUTURE_US = 86_400_000_000  # times further ahead than a day are refused at the edges
# token counts of one call above this are refused at the edges (no model comes near): so
# that the totals of traces, sessions and users can never overflow a 64-bit column
MAX_TOKENS = 10**12
MAX_COST = 1e9  # USD of one call, for the same reason: sums of costs stay finite
SpanKind = Literal["generation", "span", "tool", "retrieval", "embedding", "guardrail", "event"]
Status = Literal["ok", "error"]


@dataclass(slots=True)
class Usage:
    """Token counts of one model call; cached and reasoning tokens are part of input/output."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None

    @property
    def total_tokens(self) -> int | None:
        """Input plus output tokens, or None when neither is known."""
        if self.input_tokens is None and self.output_tokens is None:
            return None
        return (self.input_tokens or 0) + (self.output_tokens or 0)


@dataclass(slots=True)
class Span:
    """One observation inside a trace: a model call, a retry attempt, a tool call…"""

    id: str
    trace_id: str
    name: str
    kind: SpanKind
    start_us: int
    end_us: int | None = None
    parent_id: str | None = None
    input: Any = None
    output: Any = None
    model: str | None = None
    provider: str | None = None
    deployment: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    cost: float | None = None
    ttft_us: int | None = None
    status: Status = "ok"
    error: str | None = None
    prompt_name: str | None = None
    prompt_version: int | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    # explicit prices per million tokens (input, output, cached) that override the table
    price_override: tuple[float, float, float | None] | None = None

    @property
    def latency_us(self) -> int | None:
        """Duration of the span, or None while it is open."""
        return None if self.end_us is None else self.end_us - self.start_us


@dataclass(slots=True)
class Trace:
    """One end-to-end request or unit of work; its totals are derived from its spans."""

    id: str
    name: str
    start_us: int
    end_us: int | None = None
    project: str = "default"
    session_id: str | None = None
    user_id: str | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    input: Any = None
    output: Any = None
    status: Status = "ok"
    environment: str | None = None
    release: str | None = None
    usage: Usage = field(default_factory=Usage)
    cost: float | None = None


@dataclass(slots=True)
class CallTrace:
    """Where wrappers around a provider record their spans (retry and fallback attempts)."""

    trace_id: str
    parent_id: str
    spans: list[Span] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Billing:
    """What the spend ledger keeps of a gateway call, beside its trace. The call is the
    record's first span; its tokens and cost are read from it once it is priced."""

    alias: str  # the model alias called
    key_id: str | None = None  # the API key (None: the master key)
    source: Literal["provider", "cache"] = "provider"  # who answered: billed, or not
    reserved: float | None = None  # USD the call's budgets held while it ran
    saved: float | None = None  # USD a cache hit saved: what the replayed answer cost
    saved_tokens: int | None = None  # the tokens of the replayed answer


@dataclass(slots=True)
class TraceRecord:
    """A trace with its spans: the unit the gateway hands to the trace writer."""

    trace: Trace
    spans: list[Span]
    # work the request path leaves to the trace writer's thread (e.g. decoding a stream's
    # events into its output and usage); it runs before cost and totals are computed
    deferred: Callable[[TraceRecord], None] | None = None
    # a partial record is one piece of a trace that arrives in several (SDK and OTLP
    # exports, a gateway call inside an SDK trace): the store merges it into what it has,
    # and fields left None (or empty) do not overwrite what is stored
    partial: bool = False
    # a gateway call: the store adds an entry for it to the spend ledger
    billing: Billing | None = None
    # a call through the gateway, refused or not (its metrics count it); ingest: False
    gateway_call: bool = False

    def settle(self) -> None:
        """Run the deferred work, once."""
        if self.deferred is not None:
            deferred, self.deferred = self.deferred, None
            deferred(self)

    def roll_up(self) -> None:
        """Set the trace's token and cost totals from its counted model-call spans."""
        usage = Usage()
        cost: float | None = None
        for span in counted_calls(self.spans):
            usage.input_tokens = _add(usage.input_tokens, span.usage.input_tokens)
            usage.output_tokens = _add(usage.output_tokens, span.usage.output_tokens)
            usage.cached_tokens = _add(usage.cached_tokens, span.usage.cached_tokens)
            usage.reasoning_tokens = _add(usage.reasoning_tokens, span.usage.reasoning_tokens)
            if span.cost is not None:
                cost = (cost or 0.0) + span.cost
        self.trace.usage = usage
        self.trace.cost = cost


def trace_of(trace_id: str, spans: list[Span]) -> Trace:
    """The trace some of its spans describe: their time range, and the root's name,
    input, output and status when the root is among them (else name "", to be merged)."""
    ends = [span.end_us for span in spans if span.end_us is not None]
    trace = Trace(
        id=trace_id,
        name="",
        start_us=min(span.start_us for span in spans),
        end_us=max(ends) if ends else None,
    )
    root = next((span for span in spans if span.parent_id is None), None)
    if root is not None:
        trace.name, trace.input, trace.output = root.name, root.input, root.output
        trace.status = root.status
    return trace


# spans that stand for a model call, whose tokens and cost make a trace's totals
USAGE_KINDS = frozenset({"generation", "embedding"})


class _Call(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def parent_id(self) -> str | None: ...
    @property
    def kind(self) -> str: ...


CallT = TypeVar("CallT", bound=_Call)


def counted_calls(spans: Iterable[CallT]) -> list[CallT]:
    """The model-call spans whose tokens and cost count in their trace's totals.

    A model call with another model call under it is not counted: an SDK span around a
    call that went through the gateway, and the gateway's span of the same call, describe
    one call, and the innermost one (the gateway's) knows the deployment and its price.
    """
    calls = [span for span in spans if span.kind in USAGE_KINDS]
    wrappers = {span.parent_id for span in calls if span.parent_id is not None}
    return [span for span in calls if span.id not in wrappers]


def _add(a: int | None, b: int | None) -> int | None:
    if b is None:
        return a
    return b if a is None else a + b
