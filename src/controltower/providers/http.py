"""One long-lived aiohttp session per provider, and the mapping of HTTP failures to errors."""

from __future__ import annotations

import email.utils
import time
from typing import Any

import aiohttp
import orjson

from controltower.errors import (
    APIError,
    ContentPolicy,
    ContextWindowExceeded,
    RateLimited,
    UpstreamBadRequest,
    UpstreamError,
)


class HttpSession:
    """Creates its aiohttp session on first use (inside the running loop) and keeps it."""

    def __init__(self, limit: int = 0) -> None:
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None

    def get(self) -> aiohttp.ClientSession:
        """The session, created on first call."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._limit,
                ttl_dns_cache=300,
                keepalive_timeout=30,
                enable_cleanup_closed=True,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                json_serialize=lambda obj: orjson.dumps(obj).decode(),
                auto_decompress=True,
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def aclose(self) -> None:
        """Close the session and its connections."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date), if any."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


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
