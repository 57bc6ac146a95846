"""Span attributes → canonical Span fields, for the GenAI semantic conventions (new and
deprecated names), OpenInference and OpenLLMetry.

One pass over the attributes with a dict lookup per key sorts each value into a named
slot (or a model parameter, or a flattened family such as `llm.input_messages.N.*`);
the slots are resolved into fields afterwards in a fixed order of preference. Nothing
here runs a regex or builds a model per attribute: this is the ingest hot path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from controltower.domain import Span, SpanKind
from controltower.domain.trace import INT64_MAX, MAX_TOKENS
from controltower.ingest import messages as msg
from controltower.tracing.normalize import storable_cost

# (name, time in µs since the epoch, attributes) of one span event
SpanEvent = tuple[str, int, dict[str, Any]]

STATUS_OK = 1
STATUS_ERROR = 2

_SLOTS: dict[str, str] = {
    # what kind of span this is
    "openinference.span.kind": "oi_kind",
    "gen_ai.operation.name": "operation",
    "llm.request.type": "request_type",
    "traceloop.span.kind": "tl_kind",
    # model and provider
    "gen_ai.request.model": "request_model",
    "gen_ai.response.model": "response_model",
    "llm.request.model": "request_model",
    "llm.response.model": "response_model",
    "llm.model_name": "response_model",
    "embedding.model_name": "response_model",
    "gen_ai.provider.name": "provider",
    "llm.provider": "provider",
    "gen_ai.system": "system",
    "llm.system": "system",
    # usage, cost, time to first token
    "gen_ai.usage.input_tokens": "input_tokens",
    "gen_ai.usage.prompt_tokens": "input_tokens",
    "llm.token_count.prompt": "input_tokens",
    "llm.usage.prompt_tokens": "input_tokens",
    "gen_ai.usage.output_tokens": "output_tokens",
    "gen_ai.usage.completion_tokens": "output_tokens",
    "llm.token_count.completion": "output_tokens",
    "llm.usage.completion_tokens": "output_tokens",
    "gen_ai.usage.cache_read.input_tokens": "cached_tokens",
    "gen_ai.usage.cache_read_input_tokens": "cached_tokens",
    "gen_ai.usage.input_tokens.cached": "cached_tokens",
    "gen_ai.usage.cached_tokens": "cached_tokens",
    "llm.token_count.prompt_details.cache_read": "cached_tokens",
    "llm.usage.cache_read_input_tokens": "cached_tokens",
    "gen_ai.usage.reasoning.output_tokens": "reasoning_tokens",
    "gen_ai.usage.output_tokens.reasoning": "reasoning_tokens",
    "gen_ai.usage.reasoning_tokens": "reasoning_tokens",
    "llm.token_count.completion_details.reasoning": "reasoning_tokens",
    "llm.usage.reasoning_tokens": "reasoning_tokens",
    "gen_ai.usage.total_tokens": "total_tokens",
    "llm.token_count.total": "total_tokens",
    "llm.usage.total_tokens": "total_tokens",
    "gen_ai.usage.cost": "cost",
    "gen_ai.cost": "cost",
    "llm.cost.total": "cost",
    "llm.usage.cost": "cost",
    "gen_ai.response.time_to_first_chunk": "ttft_s",
    "gen_ai.response.time_to_first_token": "ttft_s",
    "gen_ai.server.time_to_first_token": "ttft_s",
    # input and output
    "gen_ai.input.messages": "in_messages",
    "gen_ai.output.messages": "out_messages",
    "gen_ai.system_instructions": "system_instructions",
    "gen_ai.prompt": "in_text",
    "gen_ai.completion": "out_text",
    "gen_ai.tool.call.arguments": "in_tool",
    "gen_ai.tool.call.result": "out_tool",
    "input.value": "in_value",
    "input.mime_type": "in_mime",
    "output.value": "out_value",
    "output.mime_type": "out_mime",
    "traceloop.entity.input": "in_entity",
    "traceloop.entity.output": "out_entity",
    "llm.invocation_parameters": "invocation_parameters",
    # the trace's labels
    "user.id": "user_id",
    "enduser.id": "user_id",
    "session.id": "session_id",
    "gen_ai.conversation.id": "session_id",
    "tag.tags": "tags",
    "metadata": "metadata",
}

# model parameters, by their OpenAI request names
_PARAMS: dict[str, str] = {
    "gen_ai.request.temperature": "temperature",
    "gen_ai.request.top_p": "top_p",
    "gen_ai.request.top_k": "top_k",
    "gen_ai.request.max_tokens": "max_tokens",
    "gen_ai.request.frequency_penalty": "frequency_penalty",
    "gen_ai.request.presence_penalty": "presence_penalty",
    "gen_ai.request.stop_sequences": "stop",
    "gen_ai.request.seed": "seed",
    "gen_ai.request.choice.count": "n",
    "gen_ai.request.encoding_formats": "encoding_formats",
    "llm.is_streaming": "stream",
    "llm.top_k": "top_k",
    "llm.frequency_penalty": "frequency_penalty",
    "llm.presence_penalty": "presence_penalty",
    "llm.chat.stop_sequences": "stop",
    "llm.request.repetition_penalty": "repetition_penalty",
}

# flattened lists and maps, collected whole then unflattened
_IN_OI, _OUT_OI = "llm.input_messages.", "llm.output_messages."
_IN_INDEXED, _OUT_INDEXED = "gen_ai.prompt.", "gen_ai.completion."
_DOCUMENTS = "retrieval.documents."
_ASSOCIATION = "traceloop.association.properties."
_REQUEST = "gen_ai.request."
_FAMILIES = (_IN_OI, _OUT_OI, _IN_INDEXED, _OUT_INDEXED, _DOCUMENTS, _ASSOCIATION, _REQUEST)
_FAMILY_SLOTS = {
    _IN_OI: "in_oi",
    _OUT_OI: "out_oi",
    _IN_INDEXED: "in_indexed",
    _OUT_INDEXED: "out_indexed",
    _DOCUMENTS: "out_documents",
}

_OI_KINDS: dict[str, SpanKind] = {
    "LLM": "generation",
    "EMBEDDING": "embedding",
    "RETRIEVER": "retrieval",
    "RERANKER": "retrieval",
    "TOOL": "tool",
    "GUARDRAIL": "guardrail",
}
_OPERATIONS: dict[str, SpanKind] = {
    "chat": "generation",
    "text_completion": "generation",
    "generate_content": "generation",
    "completion": "generation",
    "embeddings": "embedding",
    "embedding": "embedding",
    "execute_tool": "tool",
    "retrieval": "retrieval",
    "retrieve": "retrieval",
    "rerank": "retrieval",
    "guardrail": "guardrail",
    "create_agent": "span",
    "invoke_agent": "span",
    "invoke_workflow": "span",
}
_REQUEST_TYPES: dict[str, SpanKind] = {
    "chat": "generation",
    "completion": "generation",
    "embedding": "embedding",
    "rerank": "retrieval",
}
_TRACELOOP_KINDS: dict[str, SpanKind] = {"tool": "tool"}
# slot → the attribute kept on a plain span, since "span" says less than the hint did
_HINTS = (
    ("oi_kind", "openinference.span.kind", _OI_KINDS),
    ("operation", "gen_ai.operation.name", _OPERATIONS),
    ("request_type", "llm.request.type", _REQUEST_TYPES),
    ("tl_kind", "traceloop.span.kind", _TRACELOOP_KINDS),
)

_PROVIDERS = {"azure.ai.openai": "azure", "az.ai.openai": "azure", "azure_openai": "azure"}
_USER_KEYS = frozenset({"user_id", "userId", "user.id"})
_SESSION_KEYS = frozenset({"session_id", "sessionId", "session.id", "conversation_id"})


@dataclass(slots=True)
class TraceFacts:
    """What the spans of one trace say about the trace as a whole."""

    user_id: str | None = None
    session_id: str | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    environment: str | None = None
    release: str | None = None


def map_span(
    span: Span,
    attributes: dict[str, Any],
    events: list[SpanEvent],
    status: tuple[int, str],
    facts: TraceFacts,
) -> None:
    """Fill the span's canonical fields from its attributes, events and OTLP status.

    Attributes no convention claims stay in `span.attributes`; labels of the whole trace
    (user, session, tags, metadata) go to `facts`.
    """
    found: dict[str, Any] = {}
    params: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    if events:
        _read_events(events, attributes, found, rest)
    families: dict[str, dict[str, Any]] | None = None
    slots, names = _SLOTS, _PARAMS
    for key, value in attributes.items():
        slot = slots.get(key)
        if slot is not None:
            found[slot] = value
            continue
        name = names.get(key)
        if name is not None:
            params[name] = value
        elif key.startswith(_FAMILIES):
            families = _add_to_family(families, key, value)
        else:
            rest[key] = value
    if families:
        _resolve_families(families, found, params, facts)
    span.kind = _kind(found, rest)
    _model(span, found, rest)
    _usage(span, found, rest)
    _io(span, found)
    if "invocation_parameters" in found:
        invoked = msg.parse_json(found["invocation_parameters"])
        if isinstance(invoked, dict):
            params = {**invoked, **params}
    _labels(found, facts)
    if status[0] == STATUS_ERROR or "exception" in found:
        _status(span, status, found.get("exception"), rest)
    span.parameters = params
    span.attributes = rest


def _add_to_family(
    families: dict[str, dict[str, Any]] | None, key: str, value: Any
) -> dict[str, dict[str, Any]]:
    if families is None:
        families = {}
    for prefix in _FAMILIES:
        if key.startswith(prefix):
            families.setdefault(prefix, {})[key[len(prefix) :]] = value
            break
    return families


def _resolve_families(
    families: dict[str, dict[str, Any]],
    found: dict[str, Any],
    params: dict[str, Any],
    facts: TraceFacts,
) -> None:
    for prefix, flat in families.items():
        slot = _FAMILY_SLOTS.get(prefix)
        if slot is not None:
            found[slot] = msg.unflatten(flat)
        elif prefix == _REQUEST:
            for name, value in flat.items():
                params.setdefault(name, value)
        else:
            _association(flat, facts)


def _association(properties: dict[str, Any], facts: TraceFacts) -> None:
    for key, value in properties.items():
        if key in _USER_KEYS:
            facts.user_id = str(value)
        elif key in _SESSION_KEYS:
            facts.session_id = str(value)
        else:
            facts.metadata[key] = value


def _read_events(
    events: list[SpanEvent],
    attributes: dict[str, Any],
    found: dict[str, Any],
    rest: dict[str, Any],
) -> None:
    inputs: list[Any] = []
    outputs: list[Any] = []
    kept: list[dict[str, Any]] = []
    for name, time_us, attrs in events:
        if name == "exception":
            found["exception"] = attrs
        elif name.startswith("gen_ai."):
            if name == "gen_ai.choice":
                outputs.append(msg.choice_message(attrs))
            elif name.endswith(".message") and name.count(".") == 2:
                inputs.append(msg.event_message(name, attrs))
            else:
                # gen_ai.content.prompt / .completion and the inference details event
                # carry ordinary attributes; the span's own attributes win
                for key, value in attrs.items():
                    attributes.setdefault(key, value)
        else:
            kept.append({"name": name, "time_us": time_us, "attributes": attrs})
    if inputs:
        found["in_events"] = inputs
    if outputs:
        found["out_events"] = outputs
    if kept:
        rest["otel.events"] = kept


def _kind(found: dict[str, Any], rest: dict[str, Any]) -> SpanKind:
    hinted = False
    for slot, key, table in _HINTS:
        hint = found.get(slot)
        if hint is None:
            continue
        text = str(hint)
        kind = table.get(text.upper() if slot == "oi_kind" else text.lower())
        if kind is not None and kind != "span":
            return kind
        rest[key] = hint
        hinted = True
    if not hinted and ("request_model" in found or "response_model" in found):
        return "generation"
    return "span"


def _model(span: Span, found: dict[str, Any], rest: dict[str, Any]) -> None:
    response = _text(found.get("response_model"))
    request = _text(found.get("request_model"))
    span.model = response or request
    if request and response and request != response:
        rest["gen_ai.request.model"] = request
    provider = _text(found.get("provider")) or _text(found.get("system"))
    if provider:
        provider = provider.lower()
        span.provider = _PROVIDERS.get(provider, provider)


def _usage(span: Span, found: dict[str, Any], rest: dict[str, Any]) -> None:
    usage = span.usage
    usage.input_tokens = _count(found.get("input_tokens"))
    usage.output_tokens = _count(found.get("output_tokens"))
    usage.cached_tokens = _count(found.get("cached_tokens"))
    usage.reasoning_tokens = _count(found.get("reasoning_tokens"))
    total = found.get("total_tokens")
    if total is not None and usage.input_tokens is None and usage.output_tokens is None:
        rest["total_tokens"] = total  # a total alone cannot be split into input and output
    cost = found.get("cost")
    if cost is not None:
        span.cost = storable_cost(_number(cost))
    ttft = _number(found.get("ttft_s"))
    if ttft is not None and 0 <= ttft * 1_000_000 <= INT64_MAX:
        span.ttft_us = round(ttft * 1_000_000)


def _io(span: Span, found: dict[str, Any]) -> None:
    for slot, convert in _INPUTS:
        if slot in found:
            span.input = convert(found[slot], found)
            break
    if "system_instructions" in found:
        system = msg.system_message(found["system_instructions"])
        if isinstance(span.input, list):
            span.input = [system, *span.input]
        elif span.input is None:
            span.input = [system]
    for slot, convert in _OUTPUTS:
        if slot in found:
            span.output = convert(found[slot], found)
            break


def _by_mime(mime_slot: str) -> Any:
    def convert(value: Any, found: dict[str, Any]) -> Any:
        if found.get(mime_slot) == "application/json":
            return msg.parse_json(value)
        return value

    return convert


def _json(value: Any, found: dict[str, Any]) -> Any:
    return msg.parse_json(value)


def _same(value: Any, found: dict[str, Any]) -> Any:
    return value


def _outputs(convert: Any) -> Any:
    return lambda value, found: msg.one_or_all(convert(value))


_INPUTS = (
    ("in_messages", lambda value, found: msg.semconv_messages(value)),
    ("in_oi", lambda value, found: msg.openinference_messages(value)),
    ("in_indexed", lambda value, found: msg.indexed_messages(value)),
    ("in_events", _same),
    ("in_tool", _json),
    ("in_entity", _json),
    ("in_value", _by_mime("in_mime")),
    ("in_text", _json),
)
_OUTPUTS = (
    ("out_messages", _outputs(msg.semconv_messages)),
    ("out_oi", _outputs(msg.openinference_messages)),
    ("out_indexed", _outputs(msg.indexed_messages)),
    ("out_events", _outputs(lambda value: value)),
    ("out_documents", lambda value, found: msg.documents(value)),
    ("out_tool", _json),
    ("out_entity", _json),
    ("out_value", _by_mime("out_mime")),
    ("out_text", _json),
)


def _labels(found: dict[str, Any], facts: TraceFacts) -> None:
    user = found.get("user_id")
    if user is not None:
        facts.user_id = str(user)
    session = found.get("session_id")
    if session is not None:
        facts.session_id = str(session)
    tags = found.get("tags")
    if tags is not None:
        tags = msg.parse_json(tags)
        for tag in tags if isinstance(tags, list) else [tags]:
            if str(tag) not in facts.tags:
                facts.tags.append(str(tag))
    metadata = found.get("metadata")
    if metadata is not None:
        metadata = msg.parse_json(metadata)
        if isinstance(metadata, dict):
            facts.metadata.update(metadata)
        else:
            facts.metadata["metadata"] = metadata


def _status(
    span: Span, status: tuple[int, str], exception: dict[str, Any] | None, rest: dict[str, Any]
) -> None:
    code, message = status
    described = None
    if exception is not None:
        kind, text = exception.get("exception.type"), exception.get("exception.message")
        described = f"{kind}: {text}" if kind and text else str(kind or text or "exception")
        if exception.get("exception.stacktrace"):
            rest["exception.stacktrace"] = exception["exception.stacktrace"]
    # an exception recorded on a span whose status was left unset failed it; one whose
    # status says OK was caught and handled, so it stays on record without failing it
    if code == STATUS_ERROR or (code != STATUS_OK and described is not None):
        span.status = "error"
        span.error = described or message or "error"
    elif described is not None:
        rest["exception"] = described


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def _count(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if not isinstance(value, int):
        try:
            value = int(float(value))
        except (TypeError, ValueError, OverflowError):  # "abc", "1e999"
            return None
    return value if 0 <= value <= MAX_TOKENS else None


def _number(value: Any) -> float | None:
    """A finite number, or None (NaN, infinities and what is no number are dropped)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None
