"""One connection pool per provider endpoint, and the mapping of HTTP failures to errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from controltower.errors import (
    APIError,
    ContentPolicy,
    ContextWindowExceeded,
    RateLimited,
    UpstreamBadRequest,
    UpstreamError,
    UpstreamTimeout,
    parse_retry_after,
)
from controltower.providers.scrub import Scrubber
from controltower.providers.transport import HttpClient, HttpResponse, TransportError

# (status, body, Retry-After header, deployment label) → the error to raise
ErrorMapping = Callable[[int, bytes, str | None, str], APIError]


class Upstream:
    """A provider endpoint: its connection pool, and its failures as gateway errors."""

    def __init__(
        self,
        base_url: str,
        label: str,
        error_for: ErrorMapping | None = None,
        scrubber: Scrubber | None = None,
    ) -> None:
        self.label = label
        self.client = HttpClient(base_url)
        self._error_for = error_for or error_from_status
        # every error raised here may quote the provider: its credentials are masked first
        self.scrubber = scrubber or Scrubber()

    def route(self, path: str, headers: dict[str, str]) -> bytes:
        """The prepared head of POSTs to `path` under the base URL."""
        return self.client.head(path, headers)

    async def post(self, head: bytes, body: dict[str, Any], timeout_s: float) -> HttpResponse:
        """POST a JSON body; return once the answer's headers are in.

        `timeout_s` bounds the headers and, for `read_ok`, the whole body.
        """
        try:
            return await self.client.post(head, orjson.dumps(body), timeout_s)
        except TransportError as exc:
            error = UpstreamError(f"{self.label} could not be reached: {exc}")
            raise self.scrubber.error(error) from None
        except TimeoutError:
            raise self._timeout(timeout_s) from None

    async def post_json(self, head: bytes, body: dict[str, Any], timeout_s: float) -> bytes:
        """POST a JSON body and return the whole 2xx answer within `timeout_s`."""
        response = await self.post(head, body, timeout_s)
        try:
            return await self.read_ok(response)
        except TimeoutError:
            raise self._timeout(timeout_s) from None

    def _timeout(self, timeout_s: float) -> UpstreamTimeout:
        return UpstreamTimeout(f"{self.label} did not answer within {timeout_s:g} s")

    async def read_ok(self, response: HttpResponse) -> bytes:
        """The whole body of a 2xx answer; any other status raises its gateway error."""
        try:
            raw = await response.read()
        except TransportError as exc:
            error = UpstreamError(f"{self.label} broke off its answer: {exc}")
            raise self.scrubber.error(error) from None
        finally:
            response.release()
        if response.status >= 300:
            retry_after = response.headers.get("retry-after")
            raise self.scrubber.error(
                self._error_for(response.status, raw, retry_after, self.label)
            )
        return raw

    async def read_stream(self, response: HttpResponse, timeout_s: float, end: str) -> bytes:
        """The next bytes of a streamed answer; raises if it ends or stalls."""
        try:
            chunk = await response.readany(timeout_s)
        except TransportError as exc:
            error = UpstreamError(f"{self.label} broke off its stream: {exc}")
            raise self.scrubber.error(error) from None
        except TimeoutError:
            raise UpstreamTimeout(
                f"{self.label} sent nothing for {timeout_s:g} s in the middle of its stream"
            ) from None
        if not chunk:
            raise UpstreamError(f"{self.label} ended its stream before {end}")
        return chunk

    async def drain(self, response: HttpResponse, timeout_s: float) -> None:
        """Read what is left of an answer (a stream's last chunk marker) to reuse its connection."""
        try:
            while await response.readany(timeout_s):
                pass
        except (TransportError, TimeoutError):
            pass  # the connection is not reused; the answer itself was complete

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self.client.aclose()


def json_object(raw: bytes, label: str) -> dict[str, Any]:
    """A provider's JSON object, or an UpstreamError saying what came instead."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise UpstreamError(f"{label} sent a malformed body: {raw[:200]!r}") from None
    if not isinstance(data, dict):
        raise UpstreamError(f"{label} sent JSON that is not an object")
    return data


def error_from_status(status: int, body: bytes, retry_after: str | None, where: str) -> APIError:
    """The error to raise for a non-2xx upstream answer, keeping the provider's message."""
    message, code = _message_and_code(body)
    text = f"{where}: {message}" if message else f"{where} answered HTTP {status}"
    lowered = f"{message} {code}".lower()
    if status == 429:
        return RateLimited(text, retry_after=parse_retry_after(retry_after))
    if status in (400, 413, 422):
        if "context_length" in lowered or "context window" in lowered or "too long" in lowered:
            return ContextWindowExceeded(text)
        if "content_policy" in lowered or "content_filter" in lowered or "safety" in lowered:
            return ContentPolicy(text)
        return UpstreamBadRequest(text, status=400, code=code)
    if status in (401, 403):
        return UpstreamError(
            f"{where} refused the gateway's credentials (HTTP {status}); "
            "check the deployment's api_key"
        )
    return UpstreamError(text)


def _message_and_code(body: bytes) -> tuple[str, str | None]:
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:300].decode("utf-8", "replace").strip(), None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        code = error.get("code") or error.get("type")
        return str(error.get("message") or ""), None if code is None else str(code)
    if isinstance(error, str):
        return error, None
    return "", None
