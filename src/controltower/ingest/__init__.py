"""Ingest: the SDK's JSON events and OTLP trace exports → partial trace records.

Pure mapping (layer 1): no web framework, database or HTTP client. The server's ingest
routes and the SDK's embedded mode both call these functions.
"""

from controltower.ingest.assemble import OtlpDecodeError, OtlpResult
from controltower.ingest.events import IngestResult, records_from_events
from controltower.ingest.otlp import (
    CODE_INVALID_ARGUMENT,
    CODE_RESOURCE_EXHAUSTED,
    CODE_UNAVAILABLE,
    decode_protobuf,
    export_response,
    status_body,
)
from controltower.ingest.otlp_json import decode_json

__all__ = [
    "CODE_INVALID_ARGUMENT",
    "CODE_RESOURCE_EXHAUSTED",
    "CODE_UNAVAILABLE",
    "IngestResult",
    "OtlpDecodeError",
    "OtlpResult",
    "decode_json",
    "decode_protobuf",
    "export_response",
    "records_from_events",
    "status_body",
]
