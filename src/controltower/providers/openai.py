"""Adapter for OpenAI, Azure OpenAI and any OpenAI-compatible server (vLLM, Ollama…)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from controltower.errors import APIError, UpstreamError, UpstreamTimeout
from controltower.providers.base import (
    SSE_DONE,
    ChatCompletion,
    ChatRequest,
    ChatStream,
    EmbeddingResult,
    StreamSummary,
    usage_from_openai,
)
from controltower.providers.http import HttpSession, error_from_status
from controltower.providers.sse import SSEParser
from controltower.settings import Deployment

DEFAULT_API_BASE = "https://api.openai.com/v1"


class OpenAIProvider:
    """Speaks the OpenAI chat completions and embeddings wire format to one deployment."""

    def __init__(self, deployment: Deployment) -> None:
        self.model = deployment.model
        self.label = deployment.label
        base = (deployment.api_base or DEFAULT_API_BASE).rstrip("/")
        key = deployment.api_key.get_secret_value() if deployment.api_key else None
        self._headers = {"Content-Type": "application/json", **deployment.headers}
        if deployment.api_version:  # Azure OpenAI: deployment in the path, key in api-key
            if "/openai/deployments/" not in base:
                base = f"{base}/openai/deployments/{deployment.model}"
            query = f"?api-version={deployment.api_version}"
            self._chat_url = f"{base}/chat/completions{query}"
            self._embed_url = f"{base}/embeddings{query}"
            if key:
                self._headers["api-key"] = key
        else:
            self._chat_url = f"{base}/chat/completions"
            self._embed_url = f"{base}/embeddings"
            if key:
                self._headers["Authorization"] = f"Bearer {key}"
        self._http = HttpSession()

    async def chat(self, request: ChatRequest) -> ChatCompletion | ChatStream:
        """Send the request upstream; a stream returns once its first event has arrived."""
        body = dict(request.body)
        body["model"] = self.model
        if request.stream:
            options = dict(body.get("stream_options") or {})
            options["include_usage"] = True
            body["stream_options"] = options
        try:
            async with asyncio.timeout(request.timeout_s):
                response = await self._post(self._chat_url, body, request.timeout_s)
                if not request.stream:
                    return _completion(await self._read_ok(response))
                return await self._open_stream(response, request.client_wants_usage)
        except TimeoutError:
            raise UpstreamTimeout(
                f"{self.label} did not answer within {request.timeout_s:g} s"
            ) from None

    async def embed(self, body: dict[str, Any], timeout_s: float) -> EmbeddingResult:
        """Forward an embeddings request to the deployment."""
        payload = dict(body)
        payload["model"] = self.model
        try:
            async with asyncio.timeout(timeout_s):
                raw = await self._read_ok(await self._post(self._embed_url, payload, timeout_s))
        except TimeoutError:
            raise UpstreamTimeout(f"{self.label} did not answer within {timeout_s:g} s") from None
        data = _json(raw, self.label)
        return EmbeddingResult(raw, usage_from_openai(data.get("usage") or {}), data.get("model"))

    async def aclose(self) -> None:
        """Close the HTTP session."""
        await self._http.aclose()

    async def _post(
        self, url: str, body: dict[str, Any], timeout_s: float
    ) -> aiohttp.ClientResponse:
        try:
            return await self._http.get().post(
                url,
                data=orjson.dumps(body),
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_read=timeout_s),
            )
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"{self.label} could not be reached: {exc}") from None

    async def _read_ok(self, response: aiohttp.ClientResponse) -> bytes:
        try:
            raw = await response.read()
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"{self.label} broke off its answer: {exc}") from None
        finally:
            response.release()
        if response.status >= 300:
            raise error_from_status(
                response.status, raw, response.headers.get("Retry-After"), self.label
            )
        return raw

    async def _open_stream(
        self, response: aiohttp.ClientResponse, client_wants_usage: bool
    ) -> ChatStream:
        if response.status >= 300:
            await self._read_ok(response)
        relay = _StreamRelay(response, self.label, client_wants_usage)
        try:
            first = await relay.first_events()
        except BaseException:
            response.release()
            raise
        return ChatStream(relay.events(first), relay.summary)


class _StreamRelay:
    """Passes upstream SSE bytes through, folding each chunk into a summary on the way."""

    def __init__(self, response: aiohttp.ClientResponse, label: str, wants_usage: bool) -> None:
        self._response = response
        self._label = label
        self._wants_usage = wants_usage
        self._parser = SSEParser()
        self.summary = StreamSummary()
        self.done = False

    async def first_events(self) -> bytes:
        """Read until at least one event is complete; return its bytes for the client."""
        while True:
            out, seen = self._process(await self._read())
            if seen:
                return out

    async def events(self, first: bytes) -> AsyncIterator[bytes]:
        """The client-bound bytes: the first events, then the rest as they arrive."""
        try:
            if first:
                yield first
            while not self.done:
                out, _ = self._process(await self._read())
                if out:
                    yield out
        finally:
            self._response.release()

    async def _read(self) -> bytes:
        try:
            chunk = await self._response.content.readany()
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"{self._label} broke off its stream: {exc}") from None
        if not chunk:
            raise UpstreamError(f"{self._label} ended its stream before [DONE]")
        return chunk

    def _process(self, chunk: bytes) -> tuple[bytes, bool]:
        out: list[bytes] = []
        events = self._parser.feed(chunk)
        for _, payload in events:
            if payload == b"[DONE]":
                self.done = True
                out.append(SSE_DONE)
                break
            data = _json(payload, self._label)
            if "error" in data:
                raise _stream_error(data, self._label)
            self.summary.add(data)
            if data.get("usage") and not data.get("choices") and not self._wants_usage:
                continue  # the usage chunk the gateway asked for on its own account
            out.append(b"data: " + payload + b"\n\n")
        return b"".join(out), bool(events)


def _completion(raw: bytes) -> ChatCompletion:
    data = _json(raw, "upstream")
    if not isinstance(data.get("choices"), list):
        raise UpstreamError("upstream answered without `choices`: not a chat completion")
    return ChatCompletion(raw, data, usage_from_openai(data.get("usage") or {}), data.get("model"))


def _json(raw: bytes, label: str) -> dict[str, Any]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise UpstreamError(f"{label} sent a malformed body: {raw[:200]!r}") from None
    if not isinstance(data, dict):
        raise UpstreamError(f"{label} sent JSON that is not an object")
    return data


def _stream_error(data: dict[str, Any], label: str) -> APIError:
    error = data.get("error")
    message = error.get("message") if isinstance(error, dict) else str(error)
    return UpstreamError(f"{label} reported an error in its stream: {message}")
