"""Ingest routes: `POST /api/ingest` (the SDK's JSON batches) and `POST /v1/traces` (OTLP)."""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from controltower.cost import PriceTable
from controltower.domain import TraceRecord
from controltower.errors import (
    APIError,
    InvalidRequest,
    QueueFull,
    RequestTooLarge,
    UnsupportedMediaType,
)
from controltower.ingest import (
    CODE_INVALID_ARGUMENT,
    CODE_RESOURCE_EXHAUSTED,
    CODE_UNAVAILABLE,
    IngestResult,
    OtlpDecodeError,
    OtlpResult,
    decode_json,
    decode_protobuf,
    export_response,
    records_from_events,
    status_body,
)
from controltower.server.asgi import read_body
from controltower.server.auth import principal_of
from controltower.store.traces import is_outage
from controltower.tracing import ObservabilityStore, TraceWriter

log = logging.getLogger("controltower.server")

T = TypeVar("T")

# bodies up to this size are decoded on the event loop (about a millisecond per 100
# spans); larger ones go to a worker thread so that other requests keep moving
_INLINE_BYTES = 256 * 1024
_INLINE_GZIP_BYTES = 32 * 1024  # compressed: it may expand ten times
_PROTOBUF_TYPES = ("application/x-protobuf", "application/protobuf")
_JSON = "application/json"
_RETRY_AFTER_S = 1


def ingest_routes(
    writer: TraceWriter, store: ObservabilityStore, prices: PriceTable, max_bytes: int
) -> list[BaseRoute]:
    """The ingest routes, feeding the trace writer (scores go straight to the store).

    Cost is not priced here: the writer's `enrich` prices every generation span that has
    a model and tokens but no cost, for ingest and gateway records alike.
    """

    async def ingest(request: Request) -> Response:
        """Store a batch of SDK events: spans, trace updates and scores.
        ---
        summary: Ingest a batch of SDK events
        description: >-
          The Python SDK's export format. Valid events are stored even when others in the
          batch are invalid; the answer lists the invalid ones by index. Accepts
          `Content-Encoding: gzip`.
        requestBody:
          required: true
          content:
            application/json:
              schema:
                type: object
                required: [batch]
                properties:
                  batch:
                    type: array
                    items:
                      type: object
                      required: [type, body]
                      properties:
                        type: {type: string, enum: [span, trace, score]}
                        body: {type: object}
        responses:
          200:
            description: Every event was accepted.
            content:
              application/json:
                schema:
                  type: object
                  properties:
                    accepted: {type: integer}
                    rejected: {type: integer}
                    errors: {type: array, items: {type: object}}
          400:
            description: >-
              The body is not a JSON object with a `batch` array (nothing stored), or some
              events are invalid (the others are stored; `errors` holds index and message).
          413:
            description: >-
              The body is larger than max_request_bytes, or the batch holds more traces
              than the whole trace queue (trace_queue_size); send smaller batches.
          415: {description: "The body is not JSON, or its Content-Encoding is not gzip."}
          503:
            description: The trace queue is full; nothing was stored. Retry after Retry-After.
        """
        try:  # the content type was checked by the RequestGuard (server/asgi.py)
            raw, gzipped = await _read(request, max_bytes)
            result = await _maybe_in_thread(raw, gzipped, _events_decoder(max_bytes))
        except APIError as exc:
            return _api_error(exc)
        project = _claim(request, result.records)
        if project is not None and result.scores:
            await run_in_threadpool(_own_scores, store, result, project)
        refused = _enqueue(writer, result.records)
        if refused is not None:
            return _api_error(refused)
        if result.scores:
            try:
                await run_in_threadpool(store.write_scores, result.scores)
            except Exception as exc:
                log.warning("writing %d scores failed: %s", len(result.scores), exc)
                return _api_error(_scores_failed(exc))
        return _ingest_answer(result)

    async def otlp_traces(request: Request) -> Response:
        """Receive an OpenTelemetry trace export (OTLP/HTTP, protobuf or JSON).
        ---
        summary: OTLP/HTTP trace export
        description: >-
          The OpenTelemetry trace endpoint. Spans in the GenAI semantic conventions (new
          and deprecated names), OpenInference and OpenLLMetry map into traces; invalid
          spans are rejected one by one and reported as a partial success. Accepts
          `Content-Encoding: gzip`. Error bodies are google.rpc.Status messages in the
          request's encoding.
        requestBody:
          required: true
          content:
            application/x-protobuf:
              schema: {type: string, format: binary, description: ExportTraceServiceRequest}
            application/json:
              schema: {type: object, description: ExportTraceServiceRequest (OTLP JSON)}
        responses:
          200:
            description: >-
              ExportTraceServiceResponse in the request's encoding; `partialSuccess` says
              how many spans were rejected and why.
            content:
              application/x-protobuf: {schema: {type: string, format: binary}}
              application/json: {schema: {type: object}}
          400:
            description: The body is not an ExportTraceServiceRequest.
            content: &status
              application/x-protobuf: {schema: {type: string, format: binary}}
              application/json: {schema: {$ref: "#/components/schemas/OtlpStatus"}}
          413:
            description: >-
              The body (or its gzip expansion) is larger than max_request_bytes, or the
              batch holds more traces than the whole trace queue (trace_queue_size):
              not retryable, send smaller batches.
            content: *status
          415:
            description: Content-Type is not application/x-protobuf or application/json.
            content: *status
          503:
            description: The trace queue is full; nothing was stored. Retry after Retry-After.
            content: *status
        """
        media = _media_type(request)
        as_json = media == _JSON
        if not as_json and media not in _PROTOBUF_TYPES:
            message = (
                f"Content-Type {media or 'none'!r} is not supported: send OTLP as "
                "application/x-protobuf or application/json"
            )
            return _otlp_error(415, CODE_INVALID_ARGUMENT, message, True)
        decode = decode_json if as_json else decode_protobuf
        try:
            raw, gzipped = await _read(request, max_bytes)
            result = await _maybe_in_thread(raw, gzipped, _otlp_decoder(decode, max_bytes))
        except OtlpDecodeError as exc:
            return _otlp_error(400, CODE_INVALID_ARGUMENT, str(exc), as_json)
        except APIError as exc:
            code = CODE_RESOURCE_EXHAUSTED if exc.status == 413 else CODE_INVALID_ARGUMENT
            return _otlp_error(exc.status, code, exc.message, as_json)
        _claim(request, result.records)
        refused = _enqueue(writer, result.records)
        if refused is not None:
            code = CODE_RESOURCE_EXHAUSTED if refused.status == 413 else CODE_UNAVAILABLE
            return _otlp_error(refused.status, code, refused.message, as_json)
        return Response(export_response(result, as_json), 200, media_type=_content_type(as_json))

    return [
        Route("/api/ingest", ingest, methods=["POST"]),
        Route("/v1/traces", otlp_traces, methods=["POST"]),
    ]


def _claim(request: Request, records: list[TraceRecord]) -> str | None:
    """Put every trace of a batch sent with an API key in the key's project; that project
    (None: the administrator's batch, whose traces name their own)."""
    project = principal_of(request.scope).project
    if project is not None:
        for record in records:
            record.trace.project = project
    return project


def _own_scores(store: ObservabilityStore, result: IngestResult, project: str) -> None:
    """Refuse the scores (sent with an API key) of traces outside the key's project: a
    score's trace must be in the batch, or stored in that project."""
    in_batch = {record.trace.id for record in result.records}
    refused: dict[int, str] = {}
    seen: dict[str, bool] = {}
    for position, score in enumerate(result.scores):
        trace_id = score.trace_id
        if trace_id in in_batch:
            continue
        if trace_id not in seen:
            trace = store.get_trace(trace_id, span_io=False)
            seen[trace_id] = trace is not None and trace["project"] == project
        if not seen[trace_id]:
            refused[position] = f"no trace {trace_id!r} in this API key's project"
    if refused:
        result.refuse_scores(refused)


async def _read(request: Request, max_bytes: int) -> tuple[bytes, bool]:
    """The raw body (413 past the limit) and whether it is gzip-compressed."""
    encoding = (request.headers.get("content-encoding") or "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding!r} is not supported: send gzip or no encoding"
        )
    raw = await read_body(request.scope, request.receive, max_bytes)
    return raw, encoding == "gzip"


async def _maybe_in_thread(raw: bytes, gzipped: bool, decode: Callable[[bytes, bool], T]) -> T:
    if len(raw) <= (_INLINE_GZIP_BYTES if gzipped else _INLINE_BYTES):
        return decode(raw, gzipped)
    return await run_in_threadpool(decode, raw, gzipped)


def gunzip(raw: bytes, max_bytes: int) -> bytes:
    """Decompress a gzip body, refusing (413) to expand it past `max_bytes`."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        body = inflater.decompress(raw, max_bytes + 1)
    except zlib.error as exc:
        raise InvalidRequest(f"The body is not valid gzip data ({exc})") from None
    if len(body) > max_bytes or inflater.unconsumed_tail:
        raise RequestTooLarge(
            f"The request body expands past the limit of {max_bytes} bytes when "
            "decompressed; send less, or raise max_request_bytes in the config"
        )
    if not inflater.eof:
        raise InvalidRequest("The gzip body is truncated")
    return body


def _events_decoder(max_bytes: int) -> Callable[[bytes, bool], IngestResult]:
    def decode(raw: bytes, gzipped: bool) -> IngestResult:
        body = gunzip(raw, max_bytes) if gzipped else raw
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(f"The request body is not valid JSON: {exc}") from None
        batch = data.get("batch") if isinstance(data, dict) else None
        if not isinstance(batch, list):
            raise InvalidRequest(
                'The body must be a JSON object with a "batch" array of events', param="batch"
            )
        return records_from_events(batch)

    return decode


def _otlp_decoder(
    decode: Callable[[bytes], OtlpResult], max_bytes: int
) -> Callable[[bytes, bool], OtlpResult]:
    def run(raw: bytes, gzipped: bool) -> OtlpResult:
        return decode(gunzip(raw, max_bytes) if gzipped else raw)

    return run


def _ingest_answer(result: IngestResult) -> Response:
    payload: dict[str, Any] = {
        "accepted": result.accepted,
        "rejected": len(result.errors),
        "errors": [{"index": index, "message": message} for index, message in result.errors],
    }
    if not result.errors:
        return Response(orjson.dumps(payload), 200, media_type=_JSON)
    first = result.errors[0]
    error = InvalidRequest(
        f"{len(result.errors)} of {result.accepted + len(result.errors)} events were "
        f"rejected (the others were stored); first, event {first[0]}: {first[1]}",
        code="invalid_events",
    )
    body = {**orjson.loads(error.body()), **payload}
    return Response(orjson.dumps(body), 400, media_type=_JSON)


def _scores_failed(exc: Exception) -> APIError:
    """The answer when the batch's spans were queued but its scores not stored: 503 while
    the store is down (spans merge, and scores with an `id`, as the SDK's, replace: sending
    the batch again duplicates nothing), else 400."""
    if is_outage(exc):
        return QueueFull(
            "The store could not take the scores (its spans were queued): send the batch "
            f"again after {_RETRY_AFTER_S} s",
            retry_after=_RETRY_AFTER_S,
        )
    return InvalidRequest(
        f"The store refused the scores of the batch ({type(exc).__name__}); its spans were queued"
    )


def _queue_full(reason: str = "The trace queue is full") -> QueueFull:
    return QueueFull(
        f"{reason}; nothing was stored: retry after {_RETRY_AFTER_S} s",
        retry_after=_RETRY_AFTER_S,
    )


def _enqueue(writer: TraceWriter, records: list[TraceRecord]) -> APIError | None:
    """Queue the batch whole; else why not: it never fits (413, not to be retried as it
    is) or the queue is full for now (503, retry after Retry-After)."""
    if len(records) > writer.capacity:
        return RequestTooLarge(
            f"The batch holds {len(records)} traces, more than the whole trace queue "
            f"(trace_queue_size: {writer.capacity}); nothing was stored: send smaller "
            "batches, or raise trace_queue_size in the config"
        )
    if records and not writer.offer(records):
        return _queue_full()
    return None


def _api_error(error: APIError) -> Response:
    headers = {name.decode(): value.decode() for name, value in error.headers()}
    return Response(error.body(), error.status, headers=headers, media_type=_JSON)


def _otlp_error(status: int, code: int, message: str, as_json: bool) -> Response:
    headers = {"retry-after": str(_RETRY_AFTER_S)} if status == 503 else None
    body = status_body(code, message, as_json)
    return Response(body, status, headers=headers, media_type=_content_type(as_json))


def _media_type(request: Request) -> str:
    return (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()


def _content_type(as_json: bool) -> str:
    return _JSON if as_json else "application/x-protobuf"
