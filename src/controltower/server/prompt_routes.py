"""The prompt registry's REST API: versions, labels, splits, rollback, history, audit, render.

Prompt names may hold `/` (folders), so the routes that end in a keyword (`/versions`,
`/labels/...`, `/history`, `/render`, `/metrics`) are matched before the bare `/api/prompts/{name}`.
"""

from __future__ import annotations

import math
import re
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from controltower.domain.ids import now_us
from controltower.domain.prompt import (
    PromptContent,
    PromptLabel,
    PromptVersion,
    SplitArm,
)
from controltower.errors import ConfigError, InvalidRequest, NotFound, RequestTooLarge
from controltower.prompts.content import content_difference, label_serves, version_number
from controltower.prompts.files import parse_prompt
from controltower.prompts.metrics import MetricsWindow, VersionMetrics
from controltower.prompts.render import PromptRenderer
from controltower.prompts.store import PromptStore
from controltower.server.query_routes import json_response
from controltower.store.prompt_forms import (
    event_to_api,
    label_to_api,
    metrics_to_api,
    move_to_api,
    rendered_to_api,
    version_to_api,
)
from controltower.store.serialize import us_to_iso
from controltower.tracing import ObservabilityStore
from controltower.tracing.params import parse_time

MAX_BODY = 1024 * 1024
_CONTENT_KEYS = ("messages", "text", "model", "params", "variables")
_VERSION_KEYS = (*_CONTENT_KEYS, "message", "author", "source")
# "body:3 messages[0].content: problem; fix: ..." from the file parser, without the line
_PROBLEM = re.compile(r"^body(?::\d+)? (?P<path>[^:]+): ")


def prompt_routes(
    store: PromptStore,
    traces: ObservabilityStore | None = None,
    renderer: PromptRenderer | None = None,
) -> list[BaseRoute]:
    """The /api/prompts and /api/audit routes over a prompt store (metrics from `traces`)."""
    return PromptRoutes(store, traces, renderer).routes()


class PromptRoutes:
    """Handlers of the prompt registry API; each parses, calls the store once, answers."""

    def __init__(
        self,
        store: PromptStore,
        traces: ObservabilityStore | None = None,
        renderer: PromptRenderer | None = None,
    ) -> None:
        self.store = store
        self.traces = traces  # the trace store the per-version metrics are read from
        self.renderer = renderer or PromptRenderer()  # the gateway's, so one thread pool

    def routes(self) -> list[BaseRoute]:
        """The routes, the ones ending in a keyword first (names may contain `/`)."""
        base = "/api/prompts/{name:path}"
        label = f"{base}/labels/{{label}}"
        return [
            Route("/api/prompts", self.list_prompts, methods=["GET"]),
            Route(f"{base}/versions", self.create_version, methods=["POST"]),
            Route(f"{base}/versions/{{version}}", self.get_version, methods=["GET"]),
            Route(f"{label}/rollback", self.rollback, methods=["POST"]),
            Route(f"{label}/split", self.split_label, methods=["PUT"]),
            Route(label, self.get_label, methods=["GET"]),
            Route(label, self.move_label, methods=["PUT"]),
            Route(f"{base}/history", self.history, methods=["GET"]),
            Route(f"{base}/render", self.render, methods=["POST"]),
            Route(f"{base}/metrics", self.metrics, methods=["GET"]),
            Route(base, self.get_prompt, methods=["GET"]),
            Route("/api/audit", self.audit, methods=["GET"]),
        ]

    async def list_prompts(self, request: Request) -> Response:
        """
        summary: List prompts by name, each with its newest version and its labels
        responses:
          200: {description: "{data: [{name, latest_version, updated_time, model, labels}]}"}
        """
        listed = await run_in_threadpool(self.store.list_prompts)
        data = [
            {
                "name": newest.name,
                "latest_version": newest.version,
                "updated_time": us_to_iso(newest.created_us),
                "model": newest.content.model,
                "labels": [label_to_api(label) for label in labels],
            }
            for newest, labels in listed
        ]
        return json_response({"data": data})

    async def get_prompt(self, request: Request) -> Response:
        """
        summary: One prompt - its versions (newest first) and its labels
        responses:
          200: {description: "{name, versions: [version], labels: [label]}"}
          404: {description: No such prompt}
        """
        name = request.path_params["name"]

        def read() -> tuple[list[PromptVersion], list[PromptLabel]]:
            return self.store.list_versions(name), self.store.labels(name)

        versions, labels = await run_in_threadpool(read)
        return json_response(
            {
                "name": name,
                "versions": [version_to_api(v, source=False) for v in versions],
                "labels": [label_to_api(label) for label in labels],
            }
        )

    async def create_version(self, request: Request) -> Response:
        """
        summary: Push a version (a no-op when the newest version has the same content)
        description: >
          Body - the content as in a prompt file (messages or text, model, params,
          variables), and optionally message, author and source (the file as written).
          Or only source, the prompt file's YAML text, which is then parsed. Answers 201
          with created true for a new version, 200 with created false when the newest
          version already holds this content.
        responses:
          201: {description: "The new version, with created: true"}
          200: {description: "The newest version, unchanged, with created: false"}
          400: {description: "An invalid field, named in error.param"}
        """
        name = request.path_params["name"]
        body = _object(await json_body(request))
        content, source = content_from_body(name, body)
        message, author = _text(body, "message", 10_000), _text(body, "author")
        made, created = await run_in_threadpool(
            lambda: self.store.create_version(
                name, content, message=message, author=author, source=source
            )
        )
        answer = {**version_to_api(made), "created": created}
        return json_response(answer, status=201 if created else 200)

    async def get_version(self, request: Request) -> Response:
        """
        summary: One version of a prompt, with its content and source
        responses:
          200: {description: The version}
          404: {description: No such prompt or version}
        """
        name, raw = request.path_params["name"], request.path_params["version"]
        number = version_number(raw)
        if number is None:
            raise NotFound(f"prompt `{name}` has no version {raw[:40]!r}", param="version")
        found = await run_in_threadpool(lambda: self.store.get_version(name, version=number))
        return json_response(version_to_api(found))

    async def get_label(self, request: Request) -> Response:
        """
        summary: A label (latest included) and the version it points at
        responses:
          200: {description: "{label, version}"}
          404: {description: No such prompt or label}
        """
        name, label = request.path_params["name"], request.path_params["label"]

        def read() -> tuple[PromptLabel, PromptVersion]:
            found = next((lb for lb in self.store.labels(name) if lb.label == label), None)
            if found is None:
                raise NotFound(f"prompt `{name}` has no label `{label}`", param="label")
            return found, self.store.get_version(name, version=found.version)

        found, version = await run_in_threadpool(read)
        return json_response({"label": label_to_api(found), "version": version_to_api(version)})

    async def move_label(self, request: Request) -> Response:
        """
        summary: Point a label at a version (creating it), optionally protecting it
        description: >
          Body - version (integer), and optionally force (move a protected label),
          protect (true or false) and actor. `latest` cannot be moved.
        responses:
          200: {description: The label move}
          400: {description: "An invalid field, named in error.param"}
          404: {description: No such prompt or version}
          409: {description: The label is protected and force was not given}
        """
        name, label = request.path_params["name"], request.path_params["label"]
        body = _object(await json_body(request))
        _no_unknown(body, ("version", "force", "protect", "actor"))
        version, force = _version_field(body.get("version"), "version"), _flag(body, "force")
        protect = body.get("protect")
        if protect is not None and not isinstance(protect, bool):
            raise InvalidRequest("`protect` must be true or false", param="protect")
        actor = _text(body, "actor")
        move = await run_in_threadpool(
            lambda: self.store.move_label(
                name, label, version, actor=actor, force=force, protect=protect
            )
        )
        return json_response(move_to_api(move))

    async def rollback(self, request: Request) -> Response:
        """
        summary: Move a label back to the version it pointed at before its last move
        description: Body (optional) - force (for a protected label) and actor.
        responses:
          200: {description: The rollback move}
          400: {description: The label has no earlier version}
          404: {description: No such prompt or label}
          409: {description: The label is protected and force was not given}
        """
        name, label = request.path_params["name"], request.path_params["label"]
        body = _object(await json_body(request, empty={}))
        _no_unknown(body, ("force", "actor"))
        force, actor = _flag(body, "force"), _text(body, "actor")
        move = await run_in_threadpool(
            lambda: self.store.rollback(name, label, actor=actor, force=force)
        )
        return json_response(move_to_api(move))

    async def split_label(self, request: Request) -> Response:
        """
        summary: Split a label's traffic between versions by weight
        description: >
          Body - arms ([{version, weight}], two or more versions, positive weights), and
          optionally force and actor. The label reports its heaviest arm as its version.
        responses:
          200: {description: The split move}
          400: {description: "An invalid field, named in error.param"}
          404: {description: No such prompt or version}
          409: {description: The label is protected and force was not given}
        """
        name, label = request.path_params["name"], request.path_params["label"]
        body = _object(await json_body(request))
        _no_unknown(body, ("arms", "force", "actor"))
        arms = arms_from_body(body.get("arms"))
        force, actor = _flag(body, "force"), _text(body, "actor")
        move = await run_in_threadpool(
            lambda: self.store.split_label(name, label, arms, actor=actor, force=force)
        )
        return json_response(move_to_api(move))

    async def history(self, request: Request) -> Response:
        """
        summary: The moves of a prompt's labels (of one, with ?label=), newest first
        responses:
          200: {description: "{data: [move]}"}
          404: {description: No such prompt}
        """
        name = request.path_params["name"]
        label = request.query_params.get("label") or None
        moves = await run_in_threadpool(self.store.label_history, name, label)
        return json_response({"data": [move_to_api(m) for m in moves]})

    async def audit(self, request: Request) -> Response:
        """
        summary: Audit events, newest first, of one target or all
        description: >
          target - a prompt name (its labels' events included) or name@label; limit -
          1 to 1000 (default 100).
        responses:
          200: {description: "{data: [event]}"}
          400: {description: An invalid limit}
        """
        params = request.query_params
        target = params.get("target") or None
        limit = _limit(params.get("limit"))
        events = await run_in_threadpool(self.store.audit_events, target, limit)
        return json_response({"data": [event_to_api(e) for e in events]})

    async def render(self, request: Request) -> Response:
        """
        summary: Render a version (by number or label, latest by default) with variables
        description: >
          Body - variables (an object), and optionally version or label. Answers the
          rendered messages (or text), the model alias and the parameters to call with.
        responses:
          200: {description: "{name, version, messages or text, model, params}"}
          400: {description: "A missing, unknown or ill-typed variable, or a template error"}
          404: {description: "No such prompt, version or label"}
        """
        name = request.path_params["name"]
        body = _object(await json_body(request))
        _no_unknown(body, ("version", "label", "variables"))
        version = body.get("version")
        if version is not None:
            version = _version_field(version, "version")
        label = _text(body, "label")
        variables = body.get("variables", {})
        if not isinstance(variables, dict):
            raise InvalidRequest("`variables` must be an object", param="variables")

        found = await run_in_threadpool(
            lambda: self.store.get_version(name, version=version, label=label)
        )
        # in the renderer's own threads, within its limits (a 400 prompt_render_limit)
        rendered = await self.renderer.render_async(found, variables)
        return json_response(rendered_to_api(rendered))

    async def metrics(self, request: Request) -> Response:
        """
        summary: Per-version metrics - requests, latency, tokens, cost, errors, user scores
        description: >
          A request is a generation span recorded with this prompt's name and version.
          since, until - an ISO date or date-time, or a time ago (24h, 7d); they bound the
          spans' start. Every version is listed, newest first, zeros when unserved.
          Latency percentiles are nearest-rank; user_scores are the means of the numeric
          and boolean scores with source user on the traces a version served.
        responses:
          200: {description: "{name, data: [{version, labels, requests, error_rate, ...}]}"}
          400: {description: An invalid since or until}
          404: {description: No such prompt}
        """
        name = request.path_params["name"]
        now = now_us()
        params = request.query_params
        window = MetricsWindow(
            since_us=_time_param(params.get("since"), "since", now),
            until_us=_time_param(params.get("until"), "until", now),
        )

        def read() -> tuple[list[PromptVersion], list[PromptLabel], dict[int, VersionMetrics]]:
            versions, labels = self.store.list_versions(name), self.store.labels(name)
            found = {} if self.traces is None else self.traces.prompt_metrics(name, window)
            return versions, labels, found

        versions, labels, found = await run_in_threadpool(read)
        data = [
            metrics_to_api(
                found.get(v.version) or VersionMetrics(v.version),
                [lb.label for lb in labels if label_serves(lb, v.version)],
            )
            for v in versions
        ]
        return json_response({"name": name, "data": data})


def _time_param(raw: str | None, param: str, now: int) -> int | None:
    return None if raw is None or not raw.strip() else parse_time(raw, param, now)


# -- request bodies ---------------------------------------------------------------------


async def json_body(request: Request, empty: Any = None) -> Any:
    """The parsed JSON body (at most MAX_BODY bytes); `empty` when there is none."""
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise RequestTooLarge(f"The request body is over {MAX_BODY} bytes")
    if not raw.strip() and empty is not None:
        return empty
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}") from None


def content_from_body(name: str, body: dict[str, Any]) -> tuple[PromptContent, str | None]:
    """The content of a pushed version and its source, checked as a prompt file is."""
    _no_unknown(body, _VERSION_KEYS)
    source = _text(body, "source", MAX_BODY)
    fields = {key: body[key] for key in _CONTENT_KEYS if key in body}
    if fields:
        try:
            text = orjson.dumps({"name": name, **fields}, option=orjson.OPT_INDENT_2).decode()
        except orjson.JSONEncodeError as exc:  # nested deeper than any prompt needs
            raise InvalidRequest(f"The prompt's fields cannot be stored: {exc}") from None
    elif source is not None:
        text = source
    else:
        raise InvalidRequest("give the content (`messages` or `text`, ...) or `source`")
    try:
        # one checker for files and bodies; a source's problems keep their line numbers
        _, content = parse_prompt(text, "body" if fields else "source", expected_name=name)
    except ConfigError as exc:
        raise _invalid(exc, None if fields else "source") from None
    if fields and source is not None:
        check_source(name, source, content)
    return content, source


def check_source(name: str, source: str, content: PromptContent) -> None:
    """A 400 naming the field in which a pushed source says other than the content sent.

    The source is what a pull writes back as the prompt's file: it must hold this content.
    """
    try:
        _, written = parse_prompt(source, "source", expected_name=name)
    except ConfigError as exc:
        raise _invalid(exc, "source") from None
    field = content_difference(content, written)
    if field is not None:
        raise InvalidRequest(
            f"`source` does not match the content sent: `{field}` differs; send the "
            "content parsed from the source, or only the source",
            param=field,
        )


def _invalid(error: ConfigError, field: str | None) -> InvalidRequest:
    """One InvalidRequest naming the first bad field (all problems in the message)."""
    if field is not None:
        return InvalidRequest("; ".join(error.problems), param=field)
    problems = [_PROBLEM.sub(r"\g<path>: ", p) for p in error.problems]
    found = _PROBLEM.match(error.problems[0]) if error.problems else None
    path = found.group("path") if found else None
    return InvalidRequest("; ".join(problems), param=None if path == "(top level)" else path)


def arms_from_body(raw: Any) -> list[SplitArm]:
    """The arms of a split body: [{version, weight}, ...]."""
    if not isinstance(raw, list) or not raw:
        raise InvalidRequest("`arms` must be a list of {version, weight}", param="arms")
    arms = []
    for i, arm in enumerate(raw):
        if not isinstance(arm, dict) or set(arm) != {"version", "weight"}:
            raise InvalidRequest(f"`arms[{i}]` must be {{version, weight}}", param=f"arms[{i}]")
        weight = arm["weight"]
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise InvalidRequest(f"`arms[{i}].weight` must be a number", param=f"arms[{i}].weight")
        if not math.isfinite(weight) or weight <= 0:
            raise InvalidRequest(
                f"`arms[{i}].weight` must be a positive number", param=f"arms[{i}].weight"
            )
        arms.append(SplitArm(_version_field(arm["version"], f"arms[{i}].version"), float(weight)))
    return arms


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object")
    return body


def _no_unknown(body: dict[str, Any], allowed: tuple[str, ...]) -> None:
    for key in body:
        if key not in allowed:
            raise InvalidRequest(
                f"unknown field `{key}` (allowed: {', '.join(allowed)})", param=str(key)
            )


def _version_field(value: Any, param: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequest(f"`{param}` must be a version number (1 or more)", param=param)
    return value


def _flag(body: dict[str, Any], key: str) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise InvalidRequest(f"`{key}` must be true or false", param=key)
    return value


def _text(body: dict[str, Any], key: str, max_len: int = 256) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_len:
        raise InvalidRequest(f"`{key}` must be a string of at most {max_len} characters", param=key)
    return value


def _limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return 100
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= 1000:
        raise InvalidRequest("`limit` must be an integer from 1 to 1000", param="limit")
    return limit


# -- answers ----------------------------------------------------------------------------
