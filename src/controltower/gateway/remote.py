"""A running controltower gateway as the model client of evals, over its HTTP API.

`controltower eval run FILE --gateway-url URL` sends every model call of the eval (the
target's and the judges') to `URL/v1/chat/completions` and `/v1/embeddings`, labelled
with the `x-controltower-tags` and `x-controltower-metadata` headers; the gateway traces
each call itself and answers its trace id in `x-controltower-trace-id`.

RAG judges read an application's retrieval spans from the gateway's query API
(`/api/traces/{id}`), where the application's own traces land.

What it cannot learn over HTTP: the deployments behind an alias (the gateway lists
aliases, not deployments) and the cost of a call: both are in the gateway's trace of
the call, which each result links to. The run's record keeps the alias and the
gateway's address (for a prompt reference, the version and content hash the prompt API
reports), and a reply's route the model the gateway says answered.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote, urlsplit

import orjson

from controltower.errors import (
    APIError,
    ConfigError,
    Forbidden,
    InvalidRequest,
    ModelNotFound,
    NotFound,
    RateLimited,
    RequestTooLarge,
    Unauthorized,
    UpstreamError,
    UpstreamTimeout,
    parse_retry_after,
)
from controltower.evals.scoring import ModelReply
from controltower.evals.session import EvalRuntime
from controltower.evals.store import EvalStore
from controltower.gateway.http_caller import HttpTargetCaller, request_head
from controltower.gateway.prompts import PREFIX, parse_reference
from controltower.providers.http import Upstream, json_object
from controltower.providers.scrub import Scrubber
from controltower.providers.transport import TransportError

TRACE_HEADER = "x-controltower-trace-id"
DEFAULT_TIMEOUT_S = 600.0  # the gateway applies its own timeouts and retries first


class RemoteGateway:
    """A `ModelClient` that calls a controltower gateway at `url` over HTTP."""

    def __init__(
        self, url: str, api_key: str | None = None, *, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        self.url = gateway_base(url)
        self.timeout_s = timeout_s
        self.label = f"the gateway at {self.url}"
        self._auth = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._upstream = Upstream(
            self.url, self.label, _gateway_error, Scrubber([api_key] if api_key else [])
        )
        self._host = urlsplit(self.url).netloc.rpartition("@")[2]
        self._aliases: list[str] | None = None

    async def chat(
        self,
        body: dict[str, Any],
        *,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        model: str | None = None,
    ) -> ModelReply:
        """One chat completion through the gateway (never streamed), with its trace id."""
        if model is not None:
            raise InvalidRequest(
                "a matrix over `model` of a prompt target sends the prompt to another alias, "
                "which the gateway's HTTP API cannot do; run this eval without --gateway-url, "
                "or put the model in the prompt's versions",
                param="model",
            )
        headers: dict[str, str] = {}
        if tags:
            headers["x-controltower-tags"] = ",".join(t.replace(",", " ") for t in tags)
        if metadata:
            headers["x-controltower-metadata"] = json.dumps(metadata, default=str)
        started = time.perf_counter()
        answer, raw = await self._send(
            "POST", "/v1/chat/completions", {**body, "stream": False}, headers
        )
        latency = (time.perf_counter() - started) * 1000
        data = json_object(raw, self.label)
        served = data.get("model")
        route = {"model": served} if isinstance(served, str) else {}
        return ModelReply(data, answer.get(TRACE_HEADER), latency, None, route)

    async def embed(self, model: str, texts: list[str]) -> list[list[float]]:
        """One embedding vector per text, from the gateway."""
        _, raw = await self._send("POST", "/v1/embeddings", {"model": model, "input": texts})
        data = json_object(raw, self.label).get("data")
        if not isinstance(data, list):
            raise UpstreamError(f"{self.label} answered embeddings without `data`")
        return [item["embedding"] for item in sorted(data, key=lambda d: d["index"])]

    async def resolve(self, model: str) -> dict[str, Any]:
        """The prompt version a reference names now (from the prompt API), or the alias."""
        if model.startswith(PREFIX):
            return await self._resolve_prompt(model)
        if self._aliases is None:
            _, raw = await self._send("GET", "/v1/models", None)
            listed = json_object(raw, self.label).get("data") or []
            self._aliases = [str(m.get("id")) for m in listed if isinstance(m, dict)]
        if model not in self._aliases:
            raise ModelNotFound(f"{self.label} has no model alias `{model}`", param="model")
        return {"alias": model, "gateway": self.url}

    async def fetch_trace(self, trace_id: str) -> dict[str, Any] | None:
        """A trace from the gateway's query API (its store holds the application's traces,
        which RAG judges read retrieval spans from); None while it is not there."""
        try:
            _, raw = await self._send("GET", f"/api/traces/{quote(trace_id, safe='')}", None)
        except NotFound:
            return None
        return json_object(raw, self.label)

    async def _resolve_prompt(self, reference: str) -> dict[str, Any]:
        name, label, number = parse_reference(reference)
        base = f"/api/prompts/{quote(name, safe='/')}"
        if number is not None:
            _, raw = await self._send("GET", f"{base}/versions/{number}", None)
            version = json_object(raw, self.label)
            moved = None
        else:
            _, raw = await self._send("GET", f"{base}/labels/{quote(label or 'latest')}", None)
            found = json_object(raw, self.label)
            version, moved = found.get("version") or {}, found.get("label") or {}
        out: dict[str, Any] = {
            "name": name,
            "label": label,
            "version": version.get("version"),
            "content_hash": version.get("content_hash"),
            "model": version.get("model"),
            "gateway": self.url,
        }
        if moved and moved.get("split"):
            out["split"] = moved["split"]
        return out

    async def _send(
        self, method: str, path: str, body: Any, headers: dict[str, str] | None = None
    ) -> tuple[dict[str, str], bytes]:
        """The answer's headers and its 2xx body; the gateway's error as an APIError."""
        sent = {"accept": "application/json", **self._auth, **(headers or {})}
        if body is not None:
            sent["content-type"] = "application/json"
        head = request_head(method, self._host, f"{urlsplit(self.url).path}{path}", sent)
        payload = b"" if body is None else orjson.dumps(body, default=str)
        try:
            response = await self._upstream.client.post(head, payload, self.timeout_s)
            raw = await self._upstream.read_ok(response)
        except TransportError as exc:
            raise UpstreamError(f"{self.label} could not be reached: {exc}") from None
        except TimeoutError:
            raise UpstreamTimeout(
                f"{self.label} did not answer within {self.timeout_s:g} s"
            ) from None
        return dict(response.headers), raw

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._upstream.aclose()


def gateway_base(url: str) -> str:
    """The gateway's address without a trailing `/` or `/v1`; ConfigError if not http(s)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            [
                f"--gateway-url {url!r}: not an http:// or https:// URL; fix: e.g. "
                "--gateway-url http://127.0.0.1:4000"
            ]
        )
    if parts.username or parts.password:
        raise ConfigError(
            [
                f"--gateway-url: write the gateway's key with --api-key, not in the URL; fix: "
                f"--gateway-url {parts.scheme}://{parts.netloc.rpartition('@')[2]}"
            ]
        )
    path = parts.path.rstrip("/").removesuffix("/v1").rstrip("/")
    return f"{parts.scheme}://{parts.netloc}{path}"


_BY_STATUS: dict[int, type[APIError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    413: RequestTooLarge,
    504: UpstreamTimeout,
}


def _gateway_error(status: int, body: bytes, retry_after: str | None, where: str) -> APIError:
    """The gateway's OpenAI-format error as the error the in-process gateway would raise."""
    message, param, code = _error_fields(body)
    text = f"{where}: {message or f'HTTP {status}'}"
    if status == 429:
        return RateLimited(text, retry_after=parse_retry_after(retry_after), code=code)
    if status == 401:
        text += "; fix: pass the gateway's key with --api-key (or CONTROLTOWER_API_KEY)"
    if status == 404 and code == ModelNotFound.code:
        return ModelNotFound(text, param=param)
    kind = _BY_STATUS.get(status, UpstreamError if status >= 500 else InvalidRequest)
    return kind(text, param=param, code=code)


def _error_fields(body: bytes) -> tuple[str, str | None, str | None]:
    try:
        data = json.loads(body)
    except ValueError:
        return body[:300].decode("utf-8", "replace").strip(), None, None
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return "", None, None
    param, code = error.get("param"), error.get("code")
    return (
        str(error.get("message") or ""),
        param if isinstance(param, str) else None,
        code if isinstance(code, str) else None,
    )


def remote_runtime(url: str, api_key: str | None, store: EvalStore) -> EvalRuntime:
    """An eval runtime whose model calls go to the gateway at `url`; runs kept in `store`."""
    client = RemoteGateway(url, api_key)
    http = HttpTargetCaller()
    return EvalRuntime(client, store, http, [client.aclose, http.aclose], traces=client)


__all__ = ["RemoteGateway", "gateway_base", "remote_runtime"]
