"""The master key check: when a key is set, every request must carry it as a Bearer token."""

from __future__ import annotations

import hmac
from urllib.parse import quote

from controltower.errors import Unauthorized
from controltower.server.asgi import Scope, header

PUBLIC_PATHS = frozenset({"/health", "/login", "/logout"})
PUBLIC_PREFIXES = ("/static/",)
COOKIE = b"controltower_key"


class MasterKeyAuth:
    """Checks `Authorization: Bearer <master key>`; with no key configured, lets all in.

    Browsers cannot add that header when they follow a link, so the web UI's login page
    sets the key in a `controltower_key` cookie (HttpOnly, SameSite=Strict) instead.
    """

    def __init__(self, master_key: str | None) -> None:
        self._expected = f"Bearer {master_key}".encode() if master_key else None
        self._key = master_key.encode() if master_key else b""

    @property
    def enabled(self) -> bool:
        """Whether requests need the key."""
        return self._expected is not None

    def accepts(self, key: str) -> bool:
        """Whether `key` is the master key (always true when none is set)."""
        return self._expected is None or hmac.compare_digest(key.encode(), self._key)

    def check(self, scope: Scope) -> None:
        """Raise Unauthorized when the request lacks the key."""
        path = scope["path"]
        if self._expected is None or path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            return
        given = header(scope, b"authorization")
        if given is None:
            cookie = _cookie(header(scope, b"cookie"))
            if cookie is not None and hmac.compare_digest(cookie, self._key):
                return
            raise Unauthorized(
                "Missing API key: send the gateway's master key as `Authorization: Bearer ...`"
            )
        if not hmac.compare_digest(given, self._expected):
            raise Unauthorized("Incorrect API key provided for this gateway")


def _cookie(raw: bytes | None) -> bytes | None:
    if not raw:
        return None
    for part in raw.split(b";"):
        name, _, value = part.strip().partition(b"=")
        if name == COOKIE:
            return value
    return None


def wants_page(scope: Scope) -> bool:
    """Whether a request is a browser asking for a UI page (sent to log in, not a 401)."""
    if scope["method"] != "GET" or scope["path"].startswith(("/api/", "/v1/")):
        return False
    return b"text/html" in (header(scope, b"accept") or b"")


def login_location(scope: Scope) -> bytes:
    """The login page's URL, coming back to the page that was asked for."""
    query = scope["query_string"].decode("latin-1")
    target = scope["path"] + ("?" + query if query else "")
    return ("/login?next=" + quote(target, safe="")).encode()
