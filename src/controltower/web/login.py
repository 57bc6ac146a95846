"""`/login` and `/logout`: the master key kept in an HttpOnly cookie for the browser."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from controltower.web.views import COOKIE_NAME, Renderer

KeyCheck = Callable[[str], bool]

MAX_FORM_BYTES = 16_384
# what a cookie value may hold unquoted (RFC 6265 cookie-octet)
_COOKIE_SAFE = re.compile(r"^[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]+$")


def login_routes(renderer: Renderer, check_key: KeyCheck | None) -> list[BaseRoute]:
    """The login form and logout; `check_key` tells whether a key is the master key."""

    async def login(request: Request) -> Response:
        after = safe_next(request.query_params.get("next"))
        if request.method == "GET":
            return _form(renderer, request, after, None, 200)
        form = await _read_form(request)
        after = safe_next(form.get("next") or after)
        key = form.get("key", "").strip()
        if not key:
            return _form(renderer, request, after, "Enter the master key.", 400)
        if not _COOKIE_SAFE.match(key):
            message = "This key has characters a cookie cannot hold (spaces, quotes, ; , or \\)."
            return _form(renderer, request, after, message, 400)
        if check_key is not None and not check_key(key):
            message = "That is not the master key of this server."
            return _form(renderer, request, after, message, 401)
        response = RedirectResponse(after, status_code=303)
        response.headers.append("set-cookie", _cookie(key, request.url.scheme == "https"))
        return response

    async def logout(request: Request) -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.headers.append(
            "set-cookie", f"{COOKIE_NAME}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"
        )
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


def _cookie(key: str, secure: bool) -> str:
    # a session cookie: the browser forgets the master key when it closes
    parts = [f"{COOKIE_NAME}={key}", "Path=/", "HttpOnly", "SameSite=Strict"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


def _form(
    renderer: Renderer, request: Request, after: str, error: str | None, status: int
) -> Response:
    return renderer.page(request, "login.html", status, section="", next=after, error=error)


async def _read_form(request: Request) -> dict[str, str]:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return {}
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[-1] for name, values in fields.items()}
