"""The OpenAPI 3 document at `/openapi.json`.

Each Starlette route documents itself in its handler's docstring (YAML after `---`, as
Starlette's schema generator reads it). Here is what they share: the path parameters (from
the route's path), the error answers every operation may give, the bearer auth, and the
schemas and query parameters they refer to. Two shorthands keep docstrings short: a
parameter given as a bare name is that entry of `components.parameters`, and an error
answer without content has the OpenAI error body. The raw OpenAI routes, which are not
Starlette routes, are described here, as are the bodies of the prompt routes.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Sequence
from typing import Any

from starlette.convertors import Convertor, IntegerConvertor, PathConvertor
from starlette.routing import BaseRoute, Route
from starlette.schemas import SchemaGenerator

from controltower.domain.trace import INT64_MAX
from controltower.server.openapi_parts import OPENAI_PATHS, PARAMETERS, SCHEMAS
from controltower.server.openapi_prompts import PROMPT_OPERATIONS, PROMPT_SCHEMAS

OPENAPI_VERSION = "3.0.3"
JSON = "application/json"
Operation = dict[str, Any]

_CONVERTOR = re.compile(r"{(\w+):\w+}")
_ERROR = {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}}
_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}
}
# answers any operation may give, added where its docstring does not say otherwise
_COMMON = {
    "400": "A parameter is not valid; error.param names it",
    "401": "The master key is missing or wrong",
}
_WITH_PATH_PARAMS = {"404": "Nothing is found at this path"}
_ON_THE_STORE = {"503": "The store is unavailable; retry after Retry-After seconds"}


def openapi_document(routes: Sequence[BaseRoute], version: str) -> dict[str, Any]:
    """The whole document: every documented route, the OpenAI routes, and the components."""
    paths: dict[str, dict[str, Operation]] = copy.deepcopy(OPENAI_PATHS)
    for path, method, operation in _route_operations(routes):
        paths.setdefault(path, {})[method] = operation
    for operations in paths.values():
        for operation in operations.values():
            _complete_responses(operation)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "controltower API",
            "version": version,
            "description": "The gateway's OpenAI-compatible routes, ingest, the read API "
            "over traces, and the prompt registry. With a master key configured, every "
            "route needs `Authorization: Bearer <master key>`.",
        },
        "paths": paths,
        "components": {
            "schemas": copy.deepcopy({**SCHEMAS, **PROMPT_SCHEMAS}),
            "parameters": copy.deepcopy(PARAMETERS),
            "securitySchemes": {"masterKey": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"masterKey": []}],
    }


def _route_operations(routes: Sequence[BaseRoute]) -> Iterator[tuple[str, str, Operation]]:
    docstrings = SchemaGenerator({})  # reads the YAML after `---`, as Starlette does
    for route in routes:
        if not isinstance(route, Route) or not route.include_in_schema:
            continue
        doc = docstrings.parse_docstring(route.endpoint)
        if not doc:
            continue
        path = _plain_path(route)
        for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
            operation = copy.deepcopy(doc)
            # YAML reads status codes as integers; OpenAPI wants them as strings
            responses = operation.get("responses", {})
            operation["responses"] = {str(code): _mended(a) for code, a in responses.items()}
            extra = PROMPT_OPERATIONS.get((method.lower(), path), {})
            _merge(operation, copy.deepcopy(extra))
            declared = operation.pop("parameters", [])
            parameters = [
                *_path_parameters(route, declared),
                *(_parameter(p) for p in declared),
            ]
            if parameters:
                operation["parameters"] = parameters
            if route.param_convertors:
                _add_defaults(operation, _WITH_PATH_PARAMS)
            _add_defaults(operation, _ON_THE_STORE)
            yield path, method.lower(), operation


def _mended(answer: dict[str, Any]) -> dict[str, Any]:
    """The answer with its whole description: YAML reads `{description: a, b}` as the
    description `a` and a key `b` without value; the keys are put back in the text."""
    strays = [key for key, value in answer.items() if value is None and key != "description"]
    if strays and isinstance(answer.get("description"), str):
        answer["description"] = ", ".join([answer["description"], *strays])
        for key in strays:
            del answer[key]
    return answer


def _plain_path(route: Route) -> str:
    return _CONVERTOR.sub(r"{\1}", route.path)  # `{name:path}` → `{name}`


def _path_parameters(route: Route, declared: list[Any]) -> Iterator[dict[str, Any]]:
    named = {p.get("name") for p in declared if isinstance(p, dict) and p.get("in") == "path"}
    for name, convertor in route.param_convertors.items():
        if name not in named:
            yield {"name": name, "in": "path", "required": True, "schema": _schema_of(convertor)}


def _schema_of(convertor: Convertor[Any]) -> dict[str, Any]:
    if isinstance(convertor, IntegerConvertor):
        return {"type": "integer", "format": "int64", "minimum": 0, "maximum": INT64_MAX}
    if isinstance(convertor, PathConvertor):  # may hold `/`
        return {"type": "string", "minLength": 1, "maxLength": 200}
    return {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[^/]+$"}


def _parameter(declared: Any) -> Any:
    if isinstance(declared, str):
        return {"$ref": f"#/components/parameters/{declared}"}
    return declared


def _merge(operation: Operation, extra: Operation) -> None:
    for key, value in extra.items():
        if key == "responses":
            for status, answer in value.items():
                operation["responses"].setdefault(str(status), {}).update(answer)
        elif key == "parameters":
            operation["parameters"] = [*operation.get("parameters", []), *value]
        else:
            operation[key] = value


def _add_defaults(operation: Operation, answers: dict[str, str]) -> None:
    responses = operation.setdefault("responses", {})
    for status, description in answers.items():
        responses.setdefault(status, {"description": description})


def _complete_responses(operation: Operation) -> None:
    """The common errors, and error bodies where none is given."""
    responses = operation["responses"]
    for status, description in _COMMON.items():
        responses.setdefault(status, {"description": description})
    for status, answer in responses.items():
        if status.startswith(("4", "5")):
            answer.setdefault("content", copy.deepcopy(_ERROR))
        if status in ("429", "503"):
            answer.setdefault("headers", copy.deepcopy(_RETRY_AFTER))
