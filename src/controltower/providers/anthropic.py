"""Adapter for Anthropic's Messages API, behind the OpenAI-format `ChatProvider` seam."""

from __future__ import annotations

from typing import Any

import orjson

from controltower.errors import (
    APIError,
    ContextWindowExceeded,
    InvalidRequest,
    UpstreamBadRequest,
    UpstreamError,
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
    sse_event,
    usage_from_openai,
)
from controltower.providers.http import Upstream, error_from_status, json_object
from controltower.providers.relay import SSERelay
from controltower.providers.scrub import Scrubber
from controltower.providers.transport import HttpResponse
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
        headers = {
            "Content-Type": "application/json",
            "anthropic-version": API_VERSION,
            **deployment.headers,
        }
        if deployment.api_key:
            headers["x-api-key"] = deployment.api_key.get_secret_value()
        scrubber = Scrubber.for_credentials(headers.get("x-api-key"), headers)
        self._upstream = Upstream(base, self.label, http_error, scrubber)
        self._messages = self._upstream.route("/v1/messages", headers)

    async def chat(self, request: ChatRequest) -> ChatCompletion | ChatStream:
        """Send the request upstream; a stream returns once its first content has arrived."""
        body = to_anthropic(request.body, self.model)
        if not request.stream:
            raw = await self._upstream.post_json(self._messages, body, request.timeout_s)
            return self._completion(raw)
        response = await self._upstream.post(self._messages, body, request.timeout_s)
        return await _StreamRelay(response, self._upstream, self.model, request).open()

    async def embed(self, body: dict[str, Any], timeout_s: float) -> EmbeddingResult:
        """Refuse: there is nothing to forward an embeddings request to."""
        raise InvalidRequest(
            f"{self.label}: Anthropic has no embeddings API; route embeddings to another provider",
            param="model",
        )

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._upstream.aclose()

    def _completion(self, raw: bytes) -> ChatCompletion:
        data = from_anthropic(json_object(raw, self.label), self.model)
        body = orjson.dumps(data)
        return ChatCompletion(body, data, usage_from_openai(data["usage"]), data["model"])


class _StreamRelay(SSERelay):
    """Translates Anthropic SSE into OpenAI chunks, folding each into a summary on the way."""

    end_marker = "message_stop"

    def __init__(
        self, response: HttpResponse, upstream: Upstream, model: str, request: ChatRequest
    ) -> None:
        super().__init__(response, upstream, request)
        # waiting past message_start lets an overloaded error that follows it still fall back
        self._translator = StreamTranslator(model)

    def _process(self, chunk: bytes) -> tuple[bytes, bool]:
        out: list[bytes] = []
        begun = False
        for _, payload in self._parser.feed(chunk):
            data = json_object(payload, self._label)
            if data.get("type") == "error":
                raise stream_error(data, self._label, before_first_byte=not self.opened)
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
