"""`/login` and `/logout`: a signed session in an HttpOnly cookie for the browser.

The cookie holds `<expiry>.<HMAC-SHA256 of the expiry>`, signed with a key derived from the
master key (by the server's `LoginGate`), never the key itself. The form carries a token
bound to a random `controltower_csrf` cookie (a signed double submit): a page of another
origin can make the browser send the cookie, but cannot read the token.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from controltower.web.views import COOKIE_NAME, Renderer

KeyCheck = Callable[[str], bool]
Signer = Callable[[bytes], str]

MAX_FORM_BYTES = 16_384
SESSION_TTL_S = 12 * 3600
CSRF_COOKIE = "controltower_csrf"
CSRF_FIELD = "csrf"
_COOKIE_FLAGS = "Path=/; HttpOnly; SameSite=Strict"
_CSRF_SHAPE = re.compile(r"[0-9a-f]{32}")
_OTHER_SITES = frozenset({"cross-site", "same-site"})  # Sec-Fetch-Site of other origins


@runtime_checkable
class LoginGate(Protocol):
    """The server's side of the login form: the key check, signing and throttling."""

    def __call__(self, key: str) -> bool:
        """Whether `key` is the master key."""
        ...

    def sign(self, message: bytes) -> str:
        """An HMAC of `message` under the server's secret."""
        ...

    def wait_s(self, client: str) -> float:
        """Seconds until `client` may try a key again (0 when it may now)."""
        ...

    def failed(self, client: str) -> None:
        """Count a wrong key from `client`."""
        ...


def session_value(sign: Signer, expires: int) -> str:
    """The session cookie's value: valid until `expires` (Unix seconds)."""
    return f"{expires}.{sign(b'session:%d' % expires)}"


def session_valid(sign: Signer, value: str, now: float) -> bool:
    """Whether a session cookie's value was signed by `sign` and has not expired."""
    expires, _, mac = value.partition(".")
    if not expires.isdigit() or int(expires) <= now:
        return False
    return hmac.compare_digest(mac, sign(b"session:%d" % int(expires)))


def csrf_token(sign: Signer, cookie: str) -> str:
    """The form token that goes with the `controltower_csrf` cookie's value."""
    return sign(b"csrf:" + cookie.encode())


def login_routes(renderer: Renderer, check_key: KeyCheck | None) -> list[BaseRoute]:
    """The login form and logout; `check_key` tells whether a key is the master key.

    When `check_key` is a `LoginGate` (the server's), it also signs and throttles; a plain
    predicate gets a gate that signs with a fixed key and never throttles.
    """
    gate = check_key if isinstance(check_key, LoginGate) else _PlainGate(check_key)

    async def login(request: Request) -> Response:
        after = safe_next(request.query_params.get("next"))
        if request.method == "GET":
            return _form(renderer, gate, request, after, None, 200)
        form = await _read_form(request)
        after = safe_next(form.get("next") or after)
        if not _csrf_ok(gate, request, form):
            message = "This form has expired or came from another site; log in again."
            return _form(renderer, gate, request, after, message, 403)
        client = request.client.host if request.client else ""
        wait = gate.wait_s(client)
        if wait > 0:
            message = f"Too many wrong keys from your address; try again in {wait:.0f} s."
            response = _form(renderer, gate, request, after, message, 429)
            response.headers["retry-after"] = str(max(1, math.ceil(wait)))
            return response
        key = form.get("key", "").strip()
        if not key:
            return _form(renderer, gate, request, after, "Enter the master key.", 400)
        if not gate(key):
            gate.failed(client)
            message = "That is not the master key of this server."
            return _form(renderer, gate, request, after, message, 401)
        response = RedirectResponse(after, status_code=303)
        session = session_value(gate.sign, int(time.time()) + SESSION_TTL_S)
        response.headers.append("set-cookie", _cookie(COOKIE_NAME, session, request))
        return response

    async def logout(request: Request) -> Response:
        # a page of another origin may not log the user out (POSTs are checked by Origin)
        if request.headers.get("sec-fetch-site") in _OTHER_SITES:
            return Response("Log out from the server's own pages.", 403)
        response = RedirectResponse("/login", status_code=303)
        response.headers.append("set-cookie", f"{COOKIE_NAME}=; Max-Age=0; {_COOKIE_FLAGS}")
        return response

    return [
        Route("/login", login, methods=["GET", "POST"], include_in_schema=False),
        Route("/logout", logout, methods=["GET", "POST"], include_in_schema=False),
    ]


def safe_next(value: str | None) -> str:
    """Where to go after login: a path on this server, never another site."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/traces"
    if any(char in value for char in "\r\n\\"):
        return "/traces"
    return value


class _PlainGate:
    """A gate around a plain key check (or none): a fixed signing key, no throttling."""

    def __init__(self, check: KeyCheck | None) -> None:
        self._check = check
        self._secret = hashlib.sha256(b"controltower web session, no server").digest()

    def __call__(self, key: str) -> bool:
        return self._check is None or self._check(key)

    def sign(self, message: bytes) -> str:
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def wait_s(self, client: str) -> float:
        return 0.0

    def failed(self, client: str) -> None:
        return None


def _cookie(name: str, value: str, request: Request) -> str:
    # session cookies: the browser forgets them when it closes; Secure when the request
    # came over TLS (as uvicorn reports the scheme, X-Forwarded-Proto with proxy_headers)
    parts = [f"{name}={value}", _COOKIE_FLAGS]
    if request.url.scheme == "https":
        parts.append("Secure")
    return "; ".join(parts)


def _csrf_ok(gate: LoginGate, request: Request, form: dict[str, str]) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE)
    given = form.get(CSRF_FIELD)
    if not cookie or not given:
        return False
    return hmac.compare_digest(given, csrf_token(gate.sign, cookie))


def _form(
    renderer: Renderer,
    gate: LoginGate,
    request: Request,
    after: str,
    error: str | None,
    status: int,
) -> Response:
    cookie = request.cookies.get(CSRF_COOKIE, "")
    fresh = not _CSRF_SHAPE.fullmatch(cookie)
    if fresh:
        cookie = secrets.token_hex(16)
    token = csrf_token(gate.sign, cookie)
    response = renderer.page(
        request, "login.html", status, section="", next=after, error=error, csrf=token
    )
    if fresh:
        response.headers.append("set-cookie", _cookie(CSRF_COOKIE, cookie, request))
    return response


async def _read_form(request: Request) -> dict[str, str]:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return {}
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[-1] for name, values in fields.items()}
