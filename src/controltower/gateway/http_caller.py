"""The HTTP client of eval `http:` targets: an application's endpoint, called once per item.

It speaks through the gateway's own transport (`providers.transport.HttpClient`), one
keep-alive pool per origin, so it needs no other HTTP library. A 429 or a 503 raises
`RateLimited` (with the answer's Retry-After), the signal on which the eval runner backs
off and lowers its concurrency; a failed connection or a timeout is a `TargetError`, an
error on that item; any other status is returned for the target to judge.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import SplitResult, urlencode, urlsplit

import orjson

from controltower.errors import RateLimited, parse_retry_after
from controltower.evals.targets import TargetError
from controltower.providers.transport import HttpClient, TransportError
from controltower.version import __version__

BACKED_OFF = (429, 503)  # statuses the runner waits out instead of failing the item
QUERY_METHODS = ("GET", "DELETE")  # their body is sent as the query string
_DEFAULTS = {"accept": "application/json", "user-agent": f"controltower-eval/{__version__}"}


class HttpTargetCaller:
    """An `HttpCaller` on the gateway's transport: one connection pool per origin."""

    def __init__(self, *, connect_timeout_s: float = 10.0) -> None:
        self.connect_timeout_s = connect_timeout_s
        self._pools: dict[str, HttpClient] = {}

    async def call(
        self, method: str, url: str, body: Any, headers: dict[str, str], timeout_s: float
    ) -> tuple[int, Any]:
        """The answer's status and its body (parsed JSON, else text)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TargetError(f"{url!r} is not an http:// or https:// URL")
        method = method.upper()
        target, payload = _target_and_payload(parts, method, body)
        sent = {**_DEFAULTS, **{k.lower(): v for k, v in headers.items()}}
        if payload:
            sent.setdefault("content-type", "application/json")
        try:
            head = request_head(method, _host(parts), target, sent)
        except ValueError as exc:
            raise TargetError(str(exc)) from None
        pool = self._pool(parts)
        try:
            response = await pool.post(head, payload, timeout_s)
            try:
                raw = await response.read()
            finally:
                response.release()
        except TransportError as exc:
            raise TargetError(f"{url} could not be reached: {exc}") from None
        except TimeoutError:
            raise TargetError(f"{url} did not answer within {timeout_s:g} s") from None
        if response.status in BACKED_OFF:
            raise RateLimited(
                f"{url} answered {response.status}",
                retry_after=parse_retry_after(response.headers.get("retry-after")),
            )
        return response.status, decoded(raw, response.headers.get("content-type"))

    async def aclose(self) -> None:
        """Close every pooled connection."""
        for pool in self._pools.values():
            await pool.aclose()
        self._pools.clear()

    def _pool(self, parts: SplitResult) -> HttpClient:
        origin = f"{parts.scheme}://{_host(parts)}"
        pool = self._pools.get(origin)
        if pool is None:
            pool = HttpClient(origin, connect_timeout_s=self.connect_timeout_s)
            self._pools[origin] = pool
        return pool


def request_head(method: str, host: str, target: str, headers: dict[str, str]) -> bytes:
    """A request's head for `HttpClient.post` (which adds Content-Length and the body).

    Header values are sent as UTF-8; ValueError for a line break in one (it would start
    another header).
    """
    lines = [f"{method} {target} HTTP/1.1\r\n", f"Host: {host}\r\n"]
    for name, value in headers.items():
        if any(c in f"{name}{value}" for c in "\r\n\0") or not name:
            raise ValueError(f"the header {name!r} holds a line break; remove it")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("utf-8")


def decoded(raw: bytes, content_type: str | None) -> Any:
    """An answer's body: its JSON when it says (or does not say) it is JSON, else text."""
    text_like = content_type is not None and "json" not in content_type.lower()
    if not text_like:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return raw.decode("utf-8", "replace")


def _host(parts: SplitResult) -> str:
    return parts.netloc.rpartition("@")[2]


def _target_and_payload(parts: SplitResult, method: str, body: Any) -> tuple[str, bytes]:
    """The request target (path and query) and the body's bytes."""
    path = parts.path or "/"
    query = parts.query
    if method in QUERY_METHODS:
        if isinstance(body, dict) and body:
            extra = urlencode({k: _query_value(v) for k, v in body.items()})
            query = f"{query}&{extra}" if query else extra
        return (f"{path}?{query}" if query else path), b""
    payload = b"" if body is None else orjson.dumps(body, default=str)
    return (f"{path}?{query}" if query else path), payload


def _query_value(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value, default=str).decode()


__all__ = ["HttpTargetCaller", "decoded", "request_head"]
