"""The API keys' REST API: create (the secret shown once), list, show, rotate, revoke.

Only the administrator (the master key) and `admin` keys reach these routes (see
`access_policy`); an admin key sees and manages the keys of its own project alone. Every
change is in the audit log, with the caller as its actor. A change takes effect on this
replica at once (the ring is refreshed before the answer) and on the others within a
second (their rings refresh in the background).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from controltower.access import KeyRing
from controltower.access.principal import Principal
from controltower.domain.ids import now_us
from controltower.domain.keys import ApiKey, check_project, expiry_us, key_view
from controltower.errors import InvalidRequest, NotFound, RequestTooLarge
from controltower.server.auth import principal_of
from controltower.server.query_routes import json_response

_MAX_BODY = 16 * 1024
_FIELDS = ("project", "name", "role", "models", "expires")


def key_routes(ring: KeyRing) -> list[BaseRoute]:
    """The routes under /api/keys, over the ring's store."""
    store = ring.store

    async def list_keys(request: Request) -> Response:
        """List API keys.
        ---
        summary: List API keys (newest first, revoked ones included), of one project
        parameters: [project]
        responses:
          200:
            description: "The keys: prefix, name, role, models, last use; no secrets"
            content: {application/json: {schema: {$ref: "#/components/schemas/ApiKeyList"}}}
        """
        project = principal_of(request.scope).scoped(request.query_params.get("project"))
        keys = await run_in_threadpool(store.list_keys, project)
        return json_response({"object": "list", "data": [key_view(k) for k in keys]})

    async def create_key(request: Request) -> Response:
        """Create an API key.
        ---
        summary: Create an API key; the answer holds its secret, shown this once
        description: >-
          Body - project (required for the master key; an admin key creates in its own),
          name, role (admin, write, ingest or read; default write), models (the aliases
          it may call; default all) and expires (30d, 12h, 90m, 2w; default never).
        requestBody:
          required: true
          content: {application/json: {schema: {$ref: "#/components/schemas/NewApiKey"}}}
        responses:
          201:
            description: "The key, with `secret`"
            content: {application/json: {schema: {$ref: "#/components/schemas/ApiKey"}}}
          400: {description: "An invalid field, named in error.param"}
          403: {description: "A project other than the admin key's own"}
        """
        principal = principal_of(request.scope)
        body = await _body(request)
        project = principal.scoped(_text(body, "project"))
        if project is None:
            raise InvalidRequest("`project` is required", param="project")
        models = body.get("models") or []
        if not isinstance(models, list) or not all(isinstance(m, str) and m for m in models):
            raise InvalidRequest("`models` must be a list of model names", param="models")
        fields: dict[str, Any] = {
            "role": _text(body, "role") or "write",
            "name": _text(body, "name"),
            "models": models,
            "expires_us": expiry_us(_text(body, "expires"), now_us()),
            "created_by": _actor(principal),
        }
        key, secret = await run_in_threadpool(
            lambda: store.create_key(check_project(project), **fields)
        )
        await run_in_threadpool(ring.refresh)
        return json_response({**key_view(key), "secret": secret}, status=201)

    async def get_key(request: Request) -> Response:
        """One API key.
        ---
        summary: One API key (no secret)
        responses:
          200:
            description: The key
            content: {application/json: {schema: {$ref: "#/components/schemas/ApiKey"}}}
          404: {description: No such key (in the caller's project)}
        """
        key = await _visible(request, store.get_key)
        return json_response(key_view(key))

    async def rotate_key(request: Request) -> Response:
        """Rotate an API key.
        ---
        summary: A new secret for a key (same id, role and limits); the old one stops working
        requestBody:
          required: false
          content: {application/json: {schema: {type: object, maxProperties: 0}}}
        responses:
          200:
            description: "The key, with its new `secret`"
            content: {application/json: {schema: {$ref: "#/components/schemas/ApiKey"}}}
          404: {description: No such key (in the caller's project)}
        """
        key = await _visible(request, store.get_key)
        actor = _actor(principal_of(request.scope))
        key, secret = await run_in_threadpool(lambda: store.rotate_key(key.id, actor=actor))
        await run_in_threadpool(ring.refresh)
        return json_response({**key_view(key), "secret": secret})

    async def revoke_key(request: Request) -> Response:
        """Revoke an API key.
        ---
        summary: Revoke an API key; it is refused on every replica within a second
        responses:
          200:
            description: The revoked key
            content: {application/json: {schema: {$ref: "#/components/schemas/ApiKey"}}}
          404: {description: No such key (in the caller's project)}
        """
        key = await _visible(request, store.get_key)
        actor = _actor(principal_of(request.scope))
        key = await run_in_threadpool(lambda: store.revoke_key(key.id, actor=actor))
        await run_in_threadpool(ring.refresh)
        return json_response(key_view(key))

    return [
        Route("/api/keys", list_keys, methods=["GET"]),
        Route("/api/keys", create_key, methods=["POST"]),
        Route("/api/keys/{key_id}", get_key, methods=["GET"]),
        Route("/api/keys/{key_id}", revoke_key, methods=["DELETE"]),
        Route("/api/keys/{key_id}/rotate", rotate_key, methods=["POST"]),
    ]


async def _visible(request: Request, get: Any) -> ApiKey:
    """The key of the path, when the caller may manage it (404 otherwise, as if none)."""
    key_id = request.path_params["key_id"]
    key: ApiKey = await run_in_threadpool(get, key_id)
    if not principal_of(request.scope).sees(key.project):
        raise NotFound(f"no API key {key_id!r}", param="key")
    return key


def _actor(principal: Principal) -> str:
    """Who made a change, for the audit log."""
    return "master" if principal.key_id is None else f"key:{principal.key_id}"


def _text(body: dict[str, Any], field: str) -> str | None:
    value = body.get(field)
    if value is not None and not isinstance(value, str):
        raise InvalidRequest(f"`{field}` must be a string", param=field)
    return value or None


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > _MAX_BODY:
        raise RequestTooLarge(f"The request body is over {_MAX_BODY} bytes")
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object")
    unknown = sorted(set(body) - set(_FIELDS))
    if unknown:
        raise InvalidRequest(
            f"unknown field `{unknown[0]}`; the fields are {', '.join(_FIELDS)}", param=unknown[0]
        )
    return body
