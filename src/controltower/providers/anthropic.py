"""Adapter for Anthropic's Messages API, behind the OpenAI-format `ChatProvider` seam."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from controltower.errors import (
    APIError,
    ContextWindowExceeded,
    InvalidRequest,
    UpstreamBadRequest,
    UpstreamError,
    UpstreamTimeout,
)
from controltower.providers.anthropic_translate import (
    StreamTranslator,
    from_anthropic,
    to_anthropic,
)
from controltower.providers.base import (
    SSE_DONE,
    ChatCompletion,
    ChatRequest,
    ChatStream,
    EmbeddingResult,
    StreamSummary,
    sse_event,
    usage_from_openai,
)
from controltower.providers.http import HttpSession, error_from_status
from controltower.providers.sse import SSEParser
from controltower.settings import Deployment

DEFAULT_API_BASE = "https://api.anthropic.com"
API_VERSION = "2023-06-01"

# A stream's error event has no HTTP status: use the status Anthropic gives the same error
# type as an HTTP answer, so that the shared mapping decides the same way in both cases.
_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}

# Anthropic's ways of saying the prompt does not fit, beyond those the shared mapping knows
_CONTEXT_HINTS = ("prompt is too long", "context limit", "context window", "exceed context")

# Events that come before Anthropic knows whether it can answer; errors often follow them
_PREAMBLE = frozenset({"message_start", "ping"})


class AnthropicProvider:
    """Speaks Anthropic's Messages API to one deployment, in and out in the OpenAI format."""

    def __init__(self, deployment: Deployment) -> None:
        self.model = deployment.model
        self.label = deployment.label
        base = (deployment.api_base or DEFAULT_API_BASE).rstrip("/").removesuffix("/v1")
        self._url = f"{base}/v1/messages"
        self._headers = {
            "Content-Type": "application/json",
            "anthropic-version": API_VERSION,
            **deployment.headers,
        }
        if deployment.api_key:
            self._headers["x-api-key"] = deployment.api_key.get_secret_value()
        self._http = HttpSession()

    async def chat(self, request: ChatRequest) -> ChatCompletion | ChatStream:
        """Send the request upstream; a stream returns once its first content has arrived."""
        body = to_anthropic(request.body, self.model)
        try:
            async with asyncio.timeout(request.timeout_s):
                response = await self._post(body, request.timeout_s)
                if not request.stream:
                    return self._completion(await self._read_ok(response))
                return await self._open_stream(response, request.client_wants_usage)
        except TimeoutError:
            raise UpstreamTimeout(
                f"{self.label} did not answer within {request.timeout_s:g} s"
            ) from None

    async def embed(self, body: dict[str, Any], timeout_s: float) -> EmbeddingResult:
        """Refuse: there is nothing to forward an embeddings request to."""
        raise InvalidRequest(
            f"{self.label}: Anthropic has no embeddings API; route embeddings to another provider",
            param="model",
        )

    async def aclose(self) -> None:
        """Close the HTTP session."""
        await self._http.aclose()

    async def _post(self, body: dict[str, Any], timeout_s: float) -> aiohttp.ClientResponse:
        try:
            return await self._http.get().post(
                self._url,
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
            raise http_error(response.status, raw, response.headers.get("Retry-After"), self.label)
        return raw

    def _completion(self, raw: bytes) -> ChatCompletion:
        data = from_anthropic(_json(raw, self.label), self.model)
        body = orjson.dumps(data)
        return ChatCompletion(body, data, usage_from_openai(data["usage"]), data["model"])

    async def _open_stream(
        self, response: aiohttp.ClientResponse, client_wants_usage: bool
    ) -> ChatStream:
        if response.status >= 300:
            await self._read_ok(response)
        relay = _StreamRelay(response, self.label, self.model, client_wants_usage)
        try:
            first = await relay.first_events()
        except BaseException:
            response.release()
            raise
        return ChatStream(relay.events(first), relay.summary)


class _StreamRelay:
    """Translates Anthropic SSE into OpenAI chunks, folding each into a summary on the way."""

    def __init__(
        self, response: aiohttp.ClientResponse, label: str, model: str, wants_usage: bool
    ) -> None:
        self._response = response
        self._label = label
        self._wants_usage = wants_usage
        self._parser = SSEParser()
        self._translator = StreamTranslator(model)
        self._opened = False
        self.summary = StreamSummary()
        self.done = False

    async def first_events(self) -> bytes:
        """Read until the answer has begun; return its bytes for the client."""
        # Waiting past message_start lets an overloaded error that follows it still fall back
        out: list[bytes] = []
        while True:
            chunk, begun = self._process(await self._read())
            out.append(chunk)
            if begun or self.done:
                self._opened = True
                return b"".join(out)

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
            raise UpstreamError(f"{self._label} ended its stream before message_stop")
        return chunk

    def _process(self, chunk: bytes) -> tuple[bytes, bool]:
        out: list[bytes] = []
        begun = False
        for _, payload in self._parser.feed(chunk):
            data = _json(payload, self._label)
            if data.get("type") == "error":
                raise stream_error(data, self._label, before_first_byte=not self._opened)
            begun = begun or data.get("type") not in _PREAMBLE
            for openai_chunk in self._translator.translate(data):
                out.append(self._emit(openai_chunk))
            if self._translator.finished:
                out.append(self._finish())
                break
        return b"".join(out), begun

    def _emit(self, chunk: dict[str, Any]) -> bytes:
        self.summary.add(chunk)
        return sse_event(orjson.dumps(chunk))

    def _finish(self) -> bytes:
        self.done = True
        usage = self._emit(self._translator.usage_chunk())  # the summary needs it either way
        return usage + SSE_DONE if self._wants_usage else SSE_DONE


def http_error(status: int, body: bytes, retry_after: str | None, where: str) -> APIError:
    """The error for a non-2xx Anthropic answer: the shared mapping, plus its context wording."""
    error = error_from_status(status, body, retry_after, where)
    if isinstance(error, UpstreamBadRequest) and any(
        hint in error.message.lower() for hint in _CONTEXT_HINTS
    ):
        return ContextWindowExceeded(error.message)
    return error


def stream_error(data: dict[str, Any], where: str, *, before_first_byte: bool) -> APIError:
    """The error for an `error` event: mapped like HTTP before the first byte, else upstream."""
    error = data.get("error")
    error = error if isinstance(error, dict) else {"message": str(error)}
    if before_first_byte:
        status = _ERROR_STATUS.get(str(error.get("type")), 500)
        return http_error(status, orjson.dumps(data), None, where)
    message = f"{error.get('message')} ({error.get('type')})"
    return UpstreamError(f"{where} reported an error in its stream: {message}")


def _json(raw: bytes, label: str) -> dict[str, Any]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise UpstreamError(f"{label} sent a malformed body: {raw[:200]!r}") from None
    if not isinstance(data, dict):
        raise UpstreamError(f"{label} sent JSON that is not an object")
    return data
