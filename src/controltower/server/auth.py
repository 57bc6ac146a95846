"""Who calls: the master key or an API key as a Bearer token, or the web UI's signed
session cookie; wrong keys are throttled per client address.

API keys are looked up in the key ring (memory, refreshed in the background), never in
the database per request. `check` answers the request's `Principal`, which the app keeps
in the ASGI scope for the routes (`principal_of`).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from urllib.parse import quote

from controltower.access import KeyRing
from controltower.access.principal import MASTER, Principal
from controltower.errors import RateLimited, Unauthorized
from controltower.server.asgi import Scope, header
from controltower.web.login import session_valid

PUBLIC_PATHS = frozenset({"/health", "/login", "/logout"})
PUBLIC_PREFIXES = ("/static/",)
COOKIE = b"controltower_key"
PRINCIPAL = "controltower.principal"  # the scope's key for the request's Principal
# the signing key of sessions and form tokens: derived from the master key, so that a
# new master key ends every session; without a master key nothing is secret anyway
_SIGNING_CONTEXT = b"controltower web session v1"


class FailedLogins:
    """Counts wrong keys per client address: `limit` in a window of `window_s` seconds
    block that address (every key it tries, right or wrong) until the window ends.

    In-process: each replica or worker counts on its own. At most `max_clients` addresses
    are remembered; past that the oldest windows are forgotten first.
    """

    def __init__(
        self,
        limit: int = 10,
        window_s: float = 60.0,
        *,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self._max_clients = max_clients
        self._clock = clock
        self._windows: dict[str, tuple[float, int]] = {}  # address → (window start, count)

    def wait_s(self, client: str) -> float:
        """Seconds until `client` may try again (0 when it may now)."""
        if not self._windows:  # the common case: nobody got the key wrong lately
            return 0.0
        entry = self._windows.get(client)
        if entry is None:
            return 0.0
        start, count = entry
        left = start + self.window_s - self._clock()
        if left <= 0:
            del self._windows[client]
            return 0.0
        return left if count >= self.limit else 0.0

    def failed(self, client: str) -> None:
        """Count a wrong key from `client`."""
        now = self._clock()
        start, count = self._windows.pop(client, (now, 0))
        if now - start >= self.window_s:
            start, count = now, 0
        self._windows[client] = (start, count + 1)  # re-inserted: the dict stays oldest-first
        if len(self._windows) > self._max_clients:
            self._forget(now)

    def _forget(self, now: float) -> None:
        for client, (start, _) in list(self._windows.items()):
            if now - start >= self.window_s:
                del self._windows[client]
        while len(self._windows) > self._max_clients:
            del self._windows[next(iter(self._windows))]


class KeyAuth:
    """Checks `Authorization: Bearer <key>` (the scheme in any case): the master key is
    the administrator, a `ct-` key from the ring is its project's principal. With no
    master key configured, every request without an API key is the administrator (a
    server on a laptop); an API key is still checked and scoped.

    Browsers cannot add that header when they follow a link, so the web UI's login page
    sets a signed session in a `controltower_key` cookie instead (never the key itself).
    The object is also the login form's gate (`controltower.web.login.LoginGate`): it
    checks a typed key, signs sessions and form tokens, and throttles wrong keys.
    """

    def __init__(
        self,
        master_key: str | None,
        failures: FailedLogins | None = None,
        ring: KeyRing | None = None,
    ) -> None:
        self._key = master_key.encode() if master_key else None
        self._secret = (
            hmac.new(self._key, _SIGNING_CONTEXT, hashlib.sha256).digest()
            if self._key
            else hashlib.sha256(_SIGNING_CONTEXT).digest()
        )
        self.failures = failures or FailedLogins()
        self.ring = ring

    @property
    def enabled(self) -> bool:
        """Whether requests need the key."""
        return self._key is not None

    def accepts(self, key: str) -> bool:
        """Whether `key` is the master key (always true when none is set)."""
        return self._key is None or hmac.compare_digest(key.encode(), self._key)

    __call__ = accepts

    def sign(self, message: bytes) -> str:
        """HMAC-SHA256 of `message` under the key derived from the master key, in hex."""
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def wait_s(self, client: str) -> float:
        """Seconds until `client` may try a key again."""
        return self.failures.wait_s(client)

    def failed(self, client: str) -> None:
        """Count a wrong key from `client`."""
        self.failures.failed(client)

    async def check(self, scope: Scope) -> Principal | None:
        """The request's principal (None on a public path). Raises Unauthorized when the
        request lacks a valid key, RateLimited while its address is blocked for trying
        wrong keys."""
        path = scope["path"]
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            return None
        given = header(scope, b"authorization")
        if given is None:
            if self._key is None:
                return MASTER
            cookie = _cookie(header(scope, b"cookie"))
            if cookie is not None and session_valid(self.sign, cookie, time.time()):
                return MASTER
            raise Unauthorized(
                "Missing API key: send an API key or the gateway's master key as "
                "`Authorization: Bearer ...`"
            )
        client = client_address(scope)
        wait = self.failures.wait_s(client)
        if wait > 0:
            raise RateLimited(
                f"Too many wrong API keys from this address; retry in {wait:.0f} s",
                retry_after=wait,
            )
        principal = await self._principal(given)
        if principal is None:
            self.failures.failed(client)
            raise Unauthorized("Incorrect API key provided for this gateway (or it was revoked)")
        return principal

    async def _principal(self, given: bytes) -> Principal | None:
        scheme, _, raw = given.partition(b" ")
        if scheme.lower() != b"bearer":
            return MASTER if self._key is None else None
        token = raw.strip()
        if token.startswith(b"ct-") and self.ring is not None:
            key = await self.ring.lookup_fresh(token.decode("latin-1"))
            return None if key is None else Principal.of_key(key)
        if self._key is None:
            return MASTER  # no master key: any other token (clients insist on one) is let in
        return MASTER if hmac.compare_digest(token, self._key) else None


def principal_of(scope: Scope) -> Principal:
    """The principal the app found for this request (the administrator when the scope
    did not pass the app's check, as in tests that mount routes alone)."""
    found: Principal = scope.get(PRINCIPAL, MASTER)
    return found


def client_address(scope: Scope) -> str:
    """The client's address as the server sees it (uvicorn's, behind proxy_headers)."""
    client = scope.get("client")
    return str(client[0]) if client else ""


def _cookie(raw: bytes | None) -> str | None:
    if not raw:
        return None
    for part in raw.split(b";"):
        name, _, value = part.strip().partition(b"=")
        if name == COOKIE:
            return value.decode("latin-1")
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
