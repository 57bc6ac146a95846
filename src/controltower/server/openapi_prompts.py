"""The prompt routes' part of the OpenAPI document: their bodies and answers, which their
docstrings leave out, keyed by (method, path); and the schemas they refer to."""

from __future__ import annotations

from controltower.domain.trace import INT64_MAX
from controltower.server.openapi_parts import (
    ANY,
    INT,
    NUMBER,
    OBJECT,
    TEXT,
    TIME,
    Schema,
    array,
    json_content,
    list_of,
    ref,
)

_SPLIT = array(
    {
        "type": "object",
        "properties": {"version": {"type": "integer"}, "weight": {"type": "number"}},
    }
)
_VERSION_NUMBER: Schema = {"type": "integer", "minimum": 1, "maximum": INT64_MAX}

PROMPT_SCHEMAS: dict[str, Schema] = {
    "PromptVersion": {
        "type": "object",
        "required": ["name", "version", "content_hash"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "integer"},
            "content_hash": {"type": "string"},
            "created_time": TIME,
            "message": TEXT,
            "author": TEXT,
            "source": TEXT,
            "created": {"type": "boolean"},
        },
        "additionalProperties": True,
    },
    "PromptLabel": {
        "type": "object",
        "required": ["label", "version"],
        "properties": {
            "label": {"type": "string"},
            "version": {"type": "integer"},
            "protected": {"type": "boolean"},
            "split": _SPLIT,
            "updated_time": TIME,
        },
    },
    "LabelMove": {
        "type": "object",
        "required": ["prompt", "label", "action"],
        "properties": {
            "prompt": {"type": "string"},
            "label": {"type": "string"},
            "action": {"type": "string"},
            "version": INT,
            "previous_version": INT,
            "split": _SPLIT,
            "actor": TEXT,
            "time": TIME,
        },
    },
    "PromptSummary": {
        "type": "object",
        "required": ["name", "latest_version"],
        "properties": {
            "name": {"type": "string"},
            "latest_version": {"type": "integer"},
            "updated_time": TIME,
            "model": TEXT,
            "labels": array(ref("PromptLabel")),
        },
    },
    "Prompt": {
        "type": "object",
        "required": ["name", "versions", "labels"],
        "properties": {
            "name": {"type": "string"},
            "versions": array(ref("PromptVersion")),
            "labels": array(ref("PromptLabel")),
        },
    },
    "AuditEvent": {
        "type": "object",
        "required": ["id", "action", "target"],
        "properties": {
            "id": {"type": "string"},
            "time": TIME,
            "actor": TEXT,
            "action": {"type": "string"},
            "target": {"type": "string"},
            "before": ANY,
            "after": ANY,
        },
    },
    "Rendered": {
        "type": "object",
        "required": ["name", "version"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "integer"},
            "messages": array(OBJECT),
            "text": TEXT,
            "model": TEXT,
            "params": OBJECT,
        },
    },
    "VersionMetrics": {
        "type": "object",
        "required": ["version", "requests"],
        "properties": {
            "version": {"type": "integer"},
            "labels": array({"type": "string"}),
            "requests": {"type": "integer"},
            "errors": {"type": "integer"},
            "error_rate": NUMBER,
            "latency_p50_ms": NUMBER,
            "latency_p95_ms": NUMBER,
            "input_tokens": INT,
            "output_tokens": INT,
            "cost": NUMBER,
            "user_scores": OBJECT,
        },
    },
    "VersionBody": {
        "type": "object",
        "description": "The content as in a prompt file, or only `source` (the file's YAML)",
        "properties": {
            "messages": array(
                {
                    "type": "object",
                    "required": ["role", "content"],
                    "properties": {"role": {"type": "string"}, "content": {"type": "string"}},
                }
            ),
            "text": {"type": "string"},
            "model": {"type": "string"},
            "params": OBJECT,
            "variables": OBJECT,
            "message": {"type": "string", "maxLength": 10_000},
            "author": {"type": "string", "maxLength": 256},
            "source": {"type": "string"},
        },
        "additionalProperties": False,
    },
    "MoveLabel": {
        "type": "object",
        "required": ["version"],
        "properties": {
            "version": _VERSION_NUMBER,
            "force": {"type": "boolean"},
            "protect": {"type": "boolean"},
            "actor": {"type": "string", "maxLength": 256},
        },
        "additionalProperties": False,
    },
    "Rollback": {
        "type": "object",
        "properties": {
            "force": {"type": "boolean"},
            "actor": {"type": "string", "maxLength": 256},
        },
        "additionalProperties": False,
    },
    "Split": {
        "type": "object",
        "required": ["arms"],
        "properties": {
            "arms": array(
                {
                    "type": "object",
                    "required": ["version", "weight"],
                    "properties": {
                        "version": _VERSION_NUMBER,
                        "weight": {"type": "number", "exclusiveMinimum": True, "minimum": 0},
                    },
                    "additionalProperties": False,
                }
            )
            | {"minItems": 2},
            "force": {"type": "boolean"},
            "actor": {"type": "string", "maxLength": 256},
        },
        "additionalProperties": False,
    },
    "Render": {
        "type": "object",
        "properties": {
            "version": _VERSION_NUMBER,
            "label": {"type": "string", "maxLength": 256},
            "variables": OBJECT,
        },
        "additionalProperties": False,
    },
}


def _body(schema: str, required: bool = True) -> Schema:
    return {"required": required, "content": json_content(ref(schema))}


def _answers(**by_status: str) -> Schema:
    return {
        status.lstrip("_"): {"content": json_content(ref(schema))}
        for status, schema in by_status.items()
    }


_MOVE_ERRORS = {"409": {"description": "The label is protected and force was not given"}}
_BASE = "/api/prompts/{name}"

# what the prompt routes' docstrings leave out, keyed by (method, path)
PROMPT_OPERATIONS: dict[tuple[str, str], Schema] = {
    ("get", "/api/prompts"): {
        "responses": {"200": {"content": json_content(list_of(ref("PromptSummary")))}}
    },
    ("get", _BASE): {"responses": _answers(_200="Prompt")},
    ("post", f"{_BASE}/versions"): {
        "requestBody": _body("VersionBody"),
        "responses": _answers(_200="PromptVersion", _201="PromptVersion"),
    },
    ("get", f"{_BASE}/versions/{{version}}"): {"responses": _answers(_200="PromptVersion")},
    ("get", f"{_BASE}/labels/{{label}}"): {
        "responses": {
            "200": {
                "content": json_content(
                    {
                        "type": "object",
                        "required": ["label", "version"],
                        "properties": {
                            "label": ref("PromptLabel"),
                            "version": ref("PromptVersion"),
                        },
                    }
                )
            }
        }
    },
    ("put", f"{_BASE}/labels/{{label}}"): {
        "requestBody": _body("MoveLabel"),
        "responses": {**_answers(_200="LabelMove"), **_MOVE_ERRORS},
    },
    ("post", f"{_BASE}/labels/{{label}}/rollback"): {
        "requestBody": _body("Rollback", required=False),
        "responses": {**_answers(_200="LabelMove"), **_MOVE_ERRORS},
    },
    ("put", f"{_BASE}/labels/{{label}}/split"): {
        "requestBody": _body("Split"),
        "responses": {**_answers(_200="LabelMove"), **_MOVE_ERRORS},
    },
    ("get", f"{_BASE}/history"): {
        "parameters": ["history_label"],
        "responses": {"200": {"content": json_content(list_of(ref("LabelMove")))}},
    },
    ("post", f"{_BASE}/render"): {
        "requestBody": _body("Render"),
        "responses": _answers(_200="Rendered"),
    },
    ("get", f"{_BASE}/metrics"): {
        "parameters": ["since", "until"],
        "responses": {
            "200": {
                "content": json_content(
                    {
                        "type": "object",
                        "required": ["name", "data"],
                        "properties": {
                            "name": {"type": "string"},
                            "data": array(ref("VersionMetrics")),
                        },
                    }
                )
            }
        },
    },
    ("get", "/api/audit"): {
        "parameters": ["audit_target", "audit_limit"],
        "responses": {"200": {"content": json_content(list_of(ref("AuditEvent")))}},
    },
}
