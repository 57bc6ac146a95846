"""The master key check: when a key is set, every request must carry it as a Bearer token."""

from __future__ import annotations

import hmac

from controltower.errors import Unauthorized
from controltower.server.asgi import Scope, header

PUBLIC_PATHS = frozenset({"/health", "/login"})
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
