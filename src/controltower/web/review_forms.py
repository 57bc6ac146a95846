"""What the review pages' forms share: reading a posted form, its CSRF token, and the
reviewer's name kept in a cookie.

The token is a double submit, as on the login form: the page sets a random
`controltower_csrf` cookie (or reuses the login form's) and puts a token derived from it
in the form; a page of another origin can make the browser send the cookie but cannot
read it. The token is an HMAC of that cookie keyed by the signed session cookie, which
no other page can read either, so a form only works in the session that rendered it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Any
from urllib.parse import parse_qs, quote, unquote

from starlette.requests import Request
from starlette.responses import Response

from controltower.domain.review import check_reviewer
from controltower.errors import InvalidRequest
from controltower.web.login import CSRF_COOKIE, CSRF_FIELD
from controltower.web.views import COOKIE_NAME, Renderer

Form = dict[str, list[str]]

MAX_FORM_BYTES = 256 * 1024  # a rubric with instructions, a long comment
REVIEWER_COOKIE = "controltower_reviewer"
_REVIEWER_AGE_S = 365 * 24 * 3600  # entered once
_CSRF_SHAPE = re.compile(r"[0-9a-f]{32}")
_FLAGS = "Path=/; HttpOnly; SameSite=Strict"


async def read_form(request: Request) -> Form:
    """The posted fields (several values per name kept); InvalidRequest when too large."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise InvalidRequest(f"the form is larger than {MAX_FORM_BYTES // 1024} KB")
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)


def form_value(form: Form, name: str, default: str = "") -> str:
    """The last value of a field, trimmed."""
    values = form.get(name)
    return values[-1].strip() if values else default


class FormGuard:
    """The CSRF token of the forms a page renders, and the check of a posted form."""

    def token(self, request: Request) -> tuple[str, str | None]:
        """The form token, and the Set-Cookie value to send when the cookie is new."""
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if _CSRF_SHAPE.fullmatch(cookie):
            return self._sign(request, cookie), None
        cookie = secrets.token_hex(16)
        return self._sign(request, cookie), self.cookie(request, CSRF_COOKIE, cookie)

    def page(
        self, renderer: Renderer, request: Request, template: str, status: int, **context: Any
    ) -> Response:
        """A page with forms: rendered with `csrf` (the token), and the cookie it is
        derived from set when the browser has none yet."""
        token, cookie = self.token(request)
        response = renderer.page(request, template, status, csrf=token, **context)
        if cookie is not None:
            response.headers.append("set-cookie", cookie)
        return response

    @staticmethod
    def expired(renderer: Renderer, request: Request) -> Response:
        """The 403 page of a form without this session's token."""
        message = "The form came from another site or an older session: reload it, try again."
        return renderer.error(request, 403, "This form has expired", message)

    def check(self, request: Request, form: Form) -> bool:
        """Whether a posted form carries the token of this browser's session."""
        cookie = request.cookies.get(CSRF_COOKIE, "")
        given = form_value(form, CSRF_FIELD)
        if not _CSRF_SHAPE.fullmatch(cookie) or not given:
            return False
        return hmac.compare_digest(given, self._sign(request, cookie))

    def cookie(self, request: Request, name: str, value: str, max_age: int | None = None) -> str:
        """A Set-Cookie value with the UI's flags (Secure over TLS)."""
        parts = [f"{name}={value}", _FLAGS]
        if max_age is not None:
            parts.append(f"Max-Age={max_age}")
        if request.url.scheme == "https":
            parts.append("Secure")
        return "; ".join(parts)

    def _sign(self, request: Request, cookie: str) -> str:
        session = request.cookies.get(COOKIE_NAME, "").encode()
        return hmac.new(session, b"review form:" + cookie.encode(), hashlib.sha256).hexdigest()


def reviewer_of(request: Request) -> str | None:
    """The reviewer's name from their cookie, if it holds a valid one."""
    raw = request.cookies.get(REVIEWER_COOKIE)
    if not raw:
        return None
    try:
        return check_reviewer(unquote(raw))
    except InvalidRequest:
        return None


def remember_reviewer(guard: FormGuard, request: Request, response: Response, name: str) -> None:
    """Keep the reviewer's name in their browser for a year."""
    value = quote(check_reviewer(name), safe="")
    response.headers.append(
        "set-cookie", guard.cookie(request, REVIEWER_COOKIE, value, _REVIEWER_AGE_S)
    )
