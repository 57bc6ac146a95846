"""Small raw-ASGI helpers for the hot routes: bounded bodies, JSON and errors, and the
request guard and security headers every answer gets."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from controltower.errors import (
    APIError,
    Forbidden,
    MisdirectedRequest,
    RequestTooLarge,
    UnsupportedMediaType,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

JSON_HEADERS: Headers = [(b"content-type", b"application/json")]


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body, or RequestTooLarge past `limit` bytes."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            if value.isdigit() and int(value) > limit:
                raise _too_large(limit)
            break
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        if len(body) > limit:
            raise _too_large(limit)
        return body
    parts = [body]
    size = len(body)
    while message.get("more_body"):
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        parts.append(chunk)
    return b"".join(parts)


def _too_large(limit: int) -> RequestTooLarge:
    return RequestTooLarge(
        f"The request body is larger than the gateway's limit of {limit} bytes; "
        "send less, or raise max_request_bytes in the config"
    )


async def send_bytes(send: Send, status: int, body: bytes, headers: Headers) -> None:
    """Send a whole response with content-length."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_json(send: Send, status: int, data: Any, headers: Headers | None = None) -> None:
    """Send a JSON response."""
    await send_bytes(send, status, orjson.dumps(data), [*JSON_HEADERS, *(headers or ())])


async def send_error(send: Send, error: APIError, headers: Headers | None = None) -> None:
    """Send an error in the OpenAI format with its status."""
    await send_bytes(
        send, error.status, error.body(), [*JSON_HEADERS, *error.headers(), *(headers or ())]
    )


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of a request header (name in lower case)."""
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]
    return None


# Every answer, page or API, carries these: no inline script or style can run, no other
# site may frame a page, browsers never guess a type, and no URL leaks to other sites.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS: Headers = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


def with_security_headers(send: Send) -> Send:
    """`send`, adding SECURITY_HEADERS to the response's start."""

    async def send_secured(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), *SECURITY_HEADERS]
        await send(message)

    return send_secured


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = frozenset({b"localhost", b"127.0.0.1", b"[::1]", b"::1"})
# JSON-only state-changing routes; `/v1/traces` checks its own types (OTLP protobuf or
# JSON) and answers in OTLP's error format
_JSON_PREFIXES = ("/api/", "/v1/")
_JSON_PATHS = frozenset({"/chat/completions", "/embeddings"})
_OWN_TYPES = frozenset({"/v1/traces"})
_MAX_SEEN_HOSTS = 64
# the headers the guard reads of a write, by their place in its list
_GUARDED = {
    b"host": 0,
    b"origin": 1,
    b"content-type": 2,
    b"content-length": 3,
    b"transfer-encoding": 4,
}


class RequestGuard:
    """Refuses what a browser could be tricked into sending: DNS rebinding (a Host that is
    not this server), cross-origin writes (an Origin other than the Host) and form or text
    bodies on the JSON routes (what a cross-site form or `no-cors` fetch can send).

    `allowed_hosts` adds names to the served host and the loopback names: `name` or
    `name:port`, `.example.com` for a domain and its subdomains, `*` for any Host. Browser
    pages of an allowed name (any port unless one is given) may also write; `*` never
    admits an Origin.
    """

    def __init__(self, allowed_hosts: list[str] | tuple[str, ...] = ()) -> None:
        entries = [entry.strip().lower().rstrip(".").encode() for entry in allowed_hosts]
        self._any_host = b"*" in entries
        listed = [entry for entry in entries if entry and entry != b"*"]
        self._suffixes = tuple(entry for entry in listed if entry.startswith(b"."))
        exact = [entry for entry in listed if not entry.startswith(b".")]
        self._origin_netlocs = frozenset(exact)
        self._origin_names = frozenset(entry for entry in exact if _hostname(entry) == entry)
        self._names = LOOPBACK_NAMES | {_hostname(entry) for entry in exact}
        self._seen: set[bytes] = set()  # Host values found good, so most requests skip parsing

    def check(self, scope: Scope) -> None:
        """Raise MisdirectedRequest, Forbidden or UnsupportedMediaType for a request."""
        if scope["method"] in SAFE_METHODS:  # reads need only the Host, usually first
            self._check_host(header(scope, b"host"), scope)
            return
        found: list[bytes | None] = [None, None, None, None, None]
        for name, value in scope["headers"]:
            index = _GUARDED.get(name)
            if index is not None:
                found[index] = value
        host, origin, media, length, chunked = found
        self._check_host(host, scope)
        if origin is not None and not self._origin_allowed(origin, host):
            raise Forbidden(
                f"Origin {origin.decode('latin-1')!r} may not change anything on this server; "
                "only its own pages and the origins in allowed_hosts may"
            )
        path: str = scope["path"]
        if path in _OWN_TYPES or not (path in _JSON_PATHS or path.startswith(_JSON_PREFIXES)):
            return
        has_body = chunked is not None or (length is not None and length != b"0")
        _check_json(media, has_body and origin is not None)

    def _check_host(self, host: bytes | None, scope: Scope) -> None:
        if host is None or host in self._seen or self._host_allowed(host, scope):
            return
        raise MisdirectedRequest(
            f"Host {host.decode('latin-1')!r} is not a name of this server; "
            "add it to allowed_hosts in the config"
        )

    def _host_allowed(self, host: bytes, scope: Scope) -> bool:
        name = _hostname(host.lower())
        allowed = (
            self._any_host
            or name in self._names
            or name.endswith(b".localhost")  # always loopback (RFC 6761): never rebound
            or self._suffix_match(name)
        )
        served = scope.get("server")  # the address the client connected to
        if not allowed and served is not None:
            allowed = name == _address_name(str(served[0]))
        if allowed and len(self._seen) < _MAX_SEEN_HOSTS:
            self._seen.add(host)
        return allowed

    def _origin_allowed(self, origin: bytes, host: bytes | None) -> bool:
        scheme, sep, netloc = origin.lower().partition(b"://")
        if not sep:  # `null` (sandboxed frames, opaque redirects) and garbage
            return False
        if host is not None and _without_port(netloc, scheme) == _without_port(
            host.lower(), scheme
        ):
            return True
        name = _hostname(netloc)
        return (
            netloc in self._origin_netlocs or name in self._origin_names or self._suffix_match(name)
        )

    def _suffix_match(self, name: bytes) -> bool:
        return any(name.endswith(suffix) or name == suffix[1:] for suffix in self._suffixes)


def _check_json(media: bytes | None, from_browser_with_body: bool) -> None:
    if media is None:
        # scripts often send JSON without a type; a browser sending a body without one is
        # a `no-cors` fetch, which is how a page of another site would try
        if from_browser_with_body:
            raise UnsupportedMediaType("Send the body as Content-Type: application/json")
        return
    kind = media.partition(b";")[0].strip().lower()
    if kind == b"application/json" or kind.endswith(b"+json"):
        return
    raise UnsupportedMediaType(
        f"Content-Type {kind.decode('latin-1')!r} is not supported here: "
        "send the body as application/json"
    )


def _hostname(host: bytes) -> bytes:
    """`name` of `name:port` or `[v6]:port`, without a trailing dot."""
    if host.startswith(b"["):
        end = host.find(b"]")
        return host[: end + 1] if end > 0 else host
    name, sep, port = host.rpartition(b":")
    if not sep or not port.isdigit() or b":" in name:
        name = host
    return name.rstrip(b".")


def _address_name(address: str) -> bytes:
    # how a Host header spells the address: IPv6 in brackets
    name = address.lower().encode()
    return b"[" + name + b"]" if b":" in name else name


def _without_port(netloc: bytes, scheme: bytes) -> bytes:
    default = b":443" if scheme == b"https" else b":80"
    return netloc[: -len(default)] if netloc.endswith(default) else netloc
