"""The parts of the OpenAPI document that no Starlette docstring holds: the schemas and query
parameters the routes share, and the raw OpenAI routes (the prompt routes' are in
`openapi_prompts`)."""

from __future__ import annotations

from typing import Any

from controltower.domain import SCORE_SOURCES
from controltower.tracing.params import MAX_PAGE_SIZE
from controltower.tracing.query import MAX_FILTER_TERMS
from controltower.tracing.spend import DEFAULT_GROUPS, INTERVALS, MAX_GROUPS, SPEND_BY

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def json_content(schema: Schema) -> Schema:
    return {"application/json": {"schema": schema}}


def nullable(kind: str, **more: Any) -> Schema:
    return {"type": kind, "nullable": True, **more}


def _page_of(item: str) -> Schema:
    return {
        "type": "object",
        "required": ["data", "next_cursor"],
        "properties": {
            "data": {"type": "array", "items": ref(item)},
            "next_cursor": nullable("string", description="Pass back as `cursor`"),
        },
    }


def list_of(item: Schema) -> Schema:
    return {"type": "object", "required": ["data"], "properties": {"data": array(item)}}


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


TEXT = nullable("string")
INT = nullable("integer")
NUMBER = nullable("number")
TIME = nullable("string", description="ISO-8601 UTC, microseconds")
ANY: Schema = {"description": "Any JSON value"}
OBJECT: Schema = {"type": "object", "additionalProperties": True}
_TOKENS = ("input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens")
_SPEND_COUNTS = ("requests", "errors", "input_tokens", "output_tokens", "cache_hits")
_TRACE_PROPERTIES: Schema = {
    "id": {"type": "string"},
    "project": TEXT,
    "name": TEXT,
    "session_id": TEXT,
    "user_id": TEXT,
    "tags": array({"type": "string"}),
    "metadata": OBJECT,
    "input": ANY,
    "output": ANY,
    "start_time": TIME,
    "end_time": TIME,
    "latency_ms": NUMBER,
    "status": TEXT,
    "usage": ref("TraceUsage"),
    "cost": NUMBER,
    "environment": TEXT,
    "release": TEXT,
    "model": TEXT,
}
_GROUP_PROPERTIES: Schema = {
    "id": {"type": "string"},
    "trace_count": {"type": "integer"},
    "start_time": TIME,
    "end_time": TIME,
    "last_time": TIME,
    "usage": ref("TraceUsage"),
    "cost": NUMBER,
}

SCHEMAS: dict[str, Schema] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "type"],
                "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                    "param": TEXT,
                    "code": TEXT,
                },
            }
        },
    },
    "TraceUsage": {
        "type": "object",
        "properties": {name: INT for name in (*_TOKENS, "total_tokens")},
    },
    "SpanUsage": {"type": "object", "properties": {name: INT for name in _TOKENS}},
    "TraceInList": {
        "type": "object",
        "description": "A trace without its spans. In lists, `input` and `output` are the "
        "values when their JSON is at most 500 characters long, else a string of their "
        "first 500 characters ending in `…`.",
        "required": ["id", "tags", "metadata", "usage"],
        "properties": _TRACE_PROPERTIES,
    },
    "Trace": {
        "type": "object",
        "required": ["id", "spans", "scores"],
        "properties": {
            **_TRACE_PROPERTIES,
            "spans": array(ref("Span")),
            "scores": array(ref("Score")),
        },
    },
    "Span": {
        "type": "object",
        "required": ["id", "trace_id", "kind", "name"],
        "properties": {
            "id": {"type": "string"},
            "trace_id": {"type": "string"},
            "parent_id": TEXT,
            "kind": {"type": "string"},
            "name": {"type": "string"},
            "start_time": TIME,
            "end_time": TIME,
            "latency_ms": NUMBER,
            "input": ANY,
            "output": ANY,
            "model": TEXT,
            "provider": TEXT,
            "deployment": TEXT,
            "parameters": OBJECT,
            "usage": ref("SpanUsage"),
            "cost": NUMBER,
            "ttft_ms": NUMBER,
            "status": TEXT,
            "error": TEXT,
            "prompt_name": TEXT,
            "prompt_version": INT,
            "attributes": OBJECT,
        },
    },
    "Score": {
        "type": "object",
        "required": ["id", "trace_id", "name", "value", "data_type"],
        "properties": {
            "id": {"type": "string"},
            "trace_id": {"type": "string"},
            "span_id": TEXT,
            "name": {"type": "string"},
            "value": {"oneOf": [{"type": "number"}, {"type": "boolean"}, {"type": "string"}]},
            "data_type": {"type": "string", "enum": ["numeric", "boolean", "categorical"]},
            "source": {"type": "string"},
            "comment": TEXT,
            "author": TEXT,
            "created_time": TIME,
        },
    },
    "NewScore": {
        "type": "object",
        "required": ["trace_id", "name", "value"],
        "properties": {
            "trace_id": {"type": "string", "minLength": 1, "maxLength": 256},
            "span_id": {"type": "string", "minLength": 1, "maxLength": 256},
            "name": {"type": "string", "minLength": 1, "maxLength": 256},
            "value": {
                "oneOf": [
                    {"type": "number"},
                    {"type": "boolean"},
                    {"type": "string", "minLength": 1, "maxLength": 256},
                ]
            },
            "source": {"type": "string", "enum": list(SCORE_SOURCES)},
            "comment": {"type": "string", "maxLength": 10_000},
            "author": {"type": "string", "maxLength": 256},
            "id": {"type": "string", "minLength": 1, "maxLength": 256},
        },
    },
    "ApiKey": {
        "type": "object",
        "required": ["id", "project", "prefix", "role"],
        "properties": {
            "id": {"type": "string"},
            "object": {"type": "string", "enum": ["api_key"]},
            "project": {"type": "string"},
            "name": TEXT,
            "prefix": {"type": "string", "description": "The secret's first characters"},
            "role": {"type": "string", "enum": ["admin", "write", "ingest", "read"]},
            "models": array({"type": "string"}),
            "created_at": TIME,
            "expires_at": TIME,
            "revoked_at": TIME,
            "last_used_at": TIME,
            "created_by": TEXT,
            "secret": {"type": "string", "description": "Only when created or rotated"},
        },
    },
    "NewApiKey": {
        "type": "object",
        "properties": {
            "project": {"type": "string", "maxLength": 64},
            "name": {"type": "string", "maxLength": 100},
            "role": {"type": "string", "enum": ["admin", "write", "ingest", "read"]},
            "models": array({"type": "string"}),
            "expires": {"type": "string", "pattern": "^[0-9]{1,6}[mhdw]$"},
        },
    },
    "ApiKeyList": list_of(ref("ApiKey")),
    "TracePage": _page_of("TraceInList"),
    "Session": {
        "type": "object",
        "required": ["id", "trace_count"],
        "properties": {**_GROUP_PROPERTIES, "user_id": TEXT},
    },
    "SessionWithTraces": {
        "type": "object",
        "required": ["id", "trace_count", "traces"],
        "properties": {
            **_GROUP_PROPERTIES,
            "user_id": TEXT,
            "traces": array(ref("TraceInList")),
        },
    },
    "SessionPage": _page_of("Session"),
    "User": {
        "type": "object",
        "required": ["id", "trace_count", "session_count"],
        "properties": {**_GROUP_PROPERTIES, "session_count": {"type": "integer"}},
    },
    "UserPage": _page_of("User"),
    "SpendSums": {
        "type": "object",
        "description": "cost: USD the providers billed (null: no price known); saved: USD "
        "the cache hits saved; reserved: USD the budgets held while the calls ran",
        "properties": {
            **{k: {"type": "integer"} for k in _SPEND_COUNTS},
            **{k: NUMBER for k in ("cost", "saved", "reserved")},
        },
    },
    "SpendReport": {
        "type": "object",
        "required": ["by", "interval", "since", "currency", "totals", "groups"],
        "properties": {
            "by": {"type": "string", "enum": list(SPEND_BY)},
            "interval": {"type": "string", "enum": list(INTERVALS)},
            "since": TIME,
            "until": TIME,
            "project": TEXT,
            "currency": {"type": "string", "enum": ["USD"]},
            "totals": ref("SpendSums"),
            "groups": array(
                {
                    "allOf": [ref("SpendSums")],
                    "properties": {
                        "key": {"description": "The group's value (null: none)"},
                        "series": array(
                            {"allOf": [ref("SpendSums")], "properties": {"bucket": TIME}}
                        ),
                    },
                }
            ),
            "groups_left_out": {"type": "integer"},
        },
    },
    "ScoreList": list_of(ref("Score")),
    "Deleted": {
        "type": "object",
        "required": ["user_id", "deleted"],
        "properties": {
            "user_id": {"type": "string"},
            "deleted": {
                "type": "object",
                "properties": {
                    k: {"type": "integer"} for k in ("traces", "spans", "scores", "spend")
                },
            },
        },
    },
    "ChatRequest": {
        "type": "object",
        "required": ["model", "messages"],
        "properties": {
            "model": {"type": "string", "minLength": 1, "example": "demo"},
            "messages": array(
                {
                    "type": "object",
                    "required": ["role", "content"],
                    "properties": {"role": {"type": "string"}, "content": {"type": "string"}},
                }
            )
            | {"minItems": 1},
            "stream": {"type": "boolean"},
            "n": {"type": "integer", "minimum": 1, "maximum": 8},
            "temperature": {"type": "number", "minimum": 0, "maximum": 2},
            "max_tokens": {"type": "integer", "minimum": 1},
        },
        "additionalProperties": True,
    },
    "EmbeddingsRequest": {
        "type": "object",
        "required": ["model", "input"],
        "properties": {
            "model": {"type": "string", "minLength": 1},
            "input": {"oneOf": [{"type": "string"}, array({"type": "string"}) | {"minItems": 1}]},
        },
        "additionalProperties": True,
    },
    "ChatCompletion": {
        "type": "object",
        "description": "An OpenAI chat completion, as the provider answered it",
        "additionalProperties": True,
    },
    "Embeddings": {"type": "object", "additionalProperties": True},
    "ModelList": {
        "type": "object",
        "required": ["object", "data"],
        "properties": {
            "object": {"type": "string", "enum": ["list"]},
            "data": array(
                {
                    "type": "object",
                    "required": ["id", "object"],
                    "properties": {
                        "id": {"type": "string"},
                        "object": {"type": "string"},
                        "created": {"type": "integer"},
                        "owned_by": {"type": "string"},
                    },
                }
            ),
        },
    },
    "OtlpStatus": {
        "type": "object",
        "description": "google.rpc.Status in OTLP JSON",
        "properties": {
            "code": {"type": "integer"},
            "message": {"type": "string"},
            "details": array(OBJECT),
        },
    },
}


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


_TIME_PATTERN = r"^(now|[0-9]{1,6}(\.[0-9]{1,3})? ?(s|m|min|h|d|w)|[0-9]{4}-[0-9]{2}-[0-9]{2}.*)$"
_TIME_HELP = "an ISO date or date-time (UTC unless it says otherwise), or a time ago: 30m, 24h, 7d"

PARAMETERS: dict[str, Schema] = {
    "since": _query("since", {"type": "string", "pattern": _TIME_PATTERN}, f"From: {_TIME_HELP}"),
    "until": _query("until", {"type": "string", "pattern": _TIME_PATTERN}, f"Before: {_TIME_HELP}"),
    "name": _query("name", {"type": "string"}, "The trace's name"),
    "user": _query("user", {"type": "string"}, "The end user's id"),
    "session": _query("session", {"type": "string"}, "The session's id"),
    "model": _query("model", {"type": "string"}, "A model of one of its generation spans"),
    "status": _query("status", {"type": "string", "enum": ["ok", "error"]}, "ok or error"),
    "tags": _query(
        "tags",
        {"type": "string"},
        f"Comma-separated; all must match (at most {MAX_FILTER_TERMS})",
    ),
    "metadata": _query(
        "metadata",
        {"type": "string"},
        f"Comma-separated `key` or `key=value` (at most {MAX_FILTER_TERMS})",
    ),
    "min_cost": _query("min_cost", {"type": "number", "minimum": 0}, "USD"),
    "min_latency": _query(
        "min_latency",
        {"type": "string", "pattern": r"^[0-9]{1,9}(\.[0-9]{1,3})? ?(ms|s|m)?$"},
        "Milliseconds, or a duration: 500ms, 2s, 1m",
    ),
    "q": _query("q", {"type": "string"}, "Text in the input or output, any case"),
    "project": _query("project", {"type": "string"}, "The project"),
    "spend_by": _query(
        "by", {"type": "string", "enum": list(SPEND_BY), "default": "project"}, "Group by"
    ),
    "spend_interval": _query(
        "interval",
        {"type": "string", "enum": list(INTERVALS), "default": "day"},
        "Time buckets (UTC; weeks start on Monday)",
    ),
    "spend_limit": _query(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": MAX_GROUPS, "default": DEFAULT_GROUPS},
        "The dearest groups shown",
    ),
    "cursor": _query("cursor", {"type": "string"}, "The next_cursor of the previous page"),
    "limit": _query(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": 50},
        "Items per page",
    ),
    "score_trace": _query("trace_id", {"type": "string"}, "Scores of this trace"),
    "score_name": _query("name", {"type": "string"}, "Scores of this name"),
    "history_label": _query("label", {"type": "string"}, "The moves of this label only"),
    "audit_target": _query("target", {"type": "string"}, "A prompt name, or name@label"),
    "audit_limit": _query(
        "limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}, "Events"
    ),
}

_SSE_EVENT: Schema = {
    "type": "object",
    "description": "Each event's data is a chat.completion.chunk, then [DONE] (or an error)",
    "required": ["data"],
    "properties": {"data": {"type": "string"}},
}
_OPENAI_ERRORS = {
    "400": {"description": "The body is not valid; error.param names the field"},
    "404": {"description": "No such model alias or prompt reference"},
    "413": {"description": "The body is larger than max_request_bytes"},
    "429": {"description": "A rate limit or budget of the caller was reached"},
    "502": {"description": "The provider failed"},
    "504": {"description": "The provider timed out"},
}

OPENAI_PATHS: dict[str, dict[str, Schema]] = {
    "/v1/chat/completions": {
        "post": {
            "summary": "A chat completion, whole or streamed (OpenAI format)",
            "description": "Routed to the alias's deployments with retries and fallbacks, "
            "and traced. Also served at /chat/completions.",
            "requestBody": {"required": True, "content": json_content(ref("ChatRequest"))},
            "responses": {
                "200": {
                    "description": "The completion, or a stream of server-sent events",
                    "content": {
                        **json_content(ref("ChatCompletion")),
                        "text/event-stream": {"schema": _SSE_EVENT},
                    },
                },
                **_OPENAI_ERRORS,
            },
        }
    },
    "/v1/embeddings": {
        "post": {
            "summary": "Embeddings (OpenAI format)",
            "description": "Also served at /embeddings.",
            "requestBody": {"required": True, "content": json_content(ref("EmbeddingsRequest"))},
            "responses": {
                "200": {
                    "description": "The embeddings",
                    "content": json_content(ref("Embeddings")),
                },
                **_OPENAI_ERRORS,
            },
        }
    },
    "/v1/models": {
        "get": {
            "summary": "The model aliases and prompt references (OpenAI format)",
            "description": "Also served at /models.",
            "responses": {
                "200": {"description": "The models", "content": json_content(ref("ModelList"))}
            },
        }
    },
}
