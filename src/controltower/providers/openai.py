"""Adapter for OpenAI, Azure OpenAI and any OpenAI-compatible server (vLLM, Ollama…)."""

from __future__ import annotations

from typing import Any

from controltower.errors import APIError, UpstreamError
from controltower.providers.base import (
    SSE_DONE,
    ChatCompletion,
    ChatRequest,
    ChatStream,
    EmbeddingResult,
    usage_from_openai,
)
from controltower.providers.http import Upstream, json_object
from controltower.providers.relay import SSERelay
from controltower.providers.scrub import Scrubber
from controltower.settings import Deployment

DEFAULT_API_BASE = "https://api.openai.com/v1"


class OpenAIProvider:
    """Speaks the OpenAI chat completions and embeddings wire format to one deployment."""

    def __init__(self, deployment: Deployment) -> None:
        self.model = deployment.model
        self.label = deployment.label
        base = (deployment.api_base or DEFAULT_API_BASE).rstrip("/")
        key = deployment.api_key.get_secret_value() if deployment.api_key else None
        headers = {"Content-Type": "application/json", **deployment.headers}
        query = ""
        if deployment.api_version:  # Azure OpenAI: deployment in the path, key in api-key
            if "/openai/deployments/" not in base:
                base = f"{base}/openai/deployments/{deployment.model}"
            query = f"?api-version={deployment.api_version}"
            if key:
                headers["api-key"] = key
        elif key:
            headers["Authorization"] = f"Bearer {key}"
        scrubber = Scrubber.for_credentials(key, headers)
        self._upstream = Upstream(base, self.label, scrubber=scrubber)
        self._chat = self._upstream.route(f"/chat/completions{query}", headers)
        self._embed = self._upstream.route(f"/embeddings{query}", headers)

    async def chat(self, request: ChatRequest) -> ChatCompletion | ChatStream:
        """Send the request upstream; a stream returns once its first event has arrived."""
        body = dict(request.body)
        body["model"] = self.model
        if request.stream:
            options = dict(body.get("stream_options") or {})
            options["include_usage"] = True
            body["stream_options"] = options
        if not request.stream:
            return _completion(await self._upstream.post_json(self._chat, body, request.timeout_s))
        response = await self._upstream.post(self._chat, body, request.timeout_s)
        return await _StreamRelay(response, self._upstream, request).open()

    async def embed(self, body: dict[str, Any], timeout_s: float) -> EmbeddingResult:
        """Forward an embeddings request to the deployment."""
        payload = dict(body)
        payload["model"] = self.model
        raw = await self._upstream.post_json(self._embed, payload, timeout_s)
        data = json_object(raw, self.label)
        return EmbeddingResult(raw, usage_from_openai(data.get("usage") or {}), data.get("model"))

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._upstream.aclose()


class _StreamRelay(SSERelay):
    """Passes upstream SSE bytes through, noting what the trace needs on the way."""

    def _process(self, chunk: bytes) -> tuple[bytes, bool]:
        out: list[bytes] = []
        events = self._parser.feed(chunk)
        for _, payload in events:
            if payload == b"[DONE]":
                self.done = True
                out.append(SSE_DONE)
                break
            # Decode only what the relay must act on; the trace writer decodes the rest.
            first = not self.summary.events  # checked whole: a bad start can still fall back
            if first or b'"error"' in payload or _may_carry_usage(payload):
                data = json_object(payload, self._label)
                if "error" in data:
                    raise _stream_error(data, self._label)
                if data.get("usage") and not data.get("choices") and not self._wants_usage:
                    self.summary.add(data)
                    continue  # the usage chunk the gateway asked for on its own account
            self.summary.add_raw(payload)
            out.append(b"data: " + payload + b"\n\n")
        return b"".join(out), bool(events)


def _completion(raw: bytes) -> ChatCompletion:
    data = json_object(raw, "upstream")
    if not isinstance(data.get("choices"), list):
        raise UpstreamError("upstream answered without `choices`: not a chat completion")
    return ChatCompletion(raw, data, usage_from_openai(data.get("usage") or {}), data.get("model"))


def _stream_error(data: dict[str, Any], label: str) -> APIError:
    error = data.get("error")
    message = error.get("message") if isinstance(error, dict) else str(error)
    return UpstreamError(f"{label} reported an error in its stream: {message}")


def _may_carry_usage(payload: bytes) -> bool:
    # With include_usage set, every chunk says "usage":null but the last one
    return (
        b'"usage"' in payload
        and b'"usage":null' not in payload
        and (b'"usage": null' not in payload)
    )
