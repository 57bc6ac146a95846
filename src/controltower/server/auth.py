"""The master key check: when a key is set, every request must carry it as a Bearer token."""

from __future__ import annotations

import hmac

from controltower.errors import Unauthorized
from controltower.server.asgi import Scope, header

PUBLIC_PATHS = frozenset({"/health"})


class MasterKeyAuth:
    """Checks `Authorization: Bearer <master key>`; with no key configured, lets all in."""

    def __init__(self, master_key: str | None) -> None:
        self._expected = f"Bearer {master_key}".encode() if master_key else None

    @property
    def enabled(self) -> bool:
        """Whether requests need the key."""
        return self._expected is not None

    def check(self, scope: Scope) -> None:
        """Raise Unauthorized when the request lacks the key."""
        if self._expected is None or scope["path"] in PUBLIC_PATHS:
            return
        given = header(scope, b"authorization")
        if given is None:
            raise Unauthorized(
                "Missing API key: send the gateway's master key as `Authorization: Bearer ...`"
            )
        if not hmac.compare_digest(given, self._expected):
            raise Unauthorized("Incorrect API key provided for this gateway")
