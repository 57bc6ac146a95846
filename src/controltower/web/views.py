"""Rendering pages, error pages and store reads off the event loop, shared by every page."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from jinja2.sandbox import SandboxedEnvironment
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from controltower.errors import APIError, NotFound

COOKIE_NAME = "controltower_key"

Handler = Callable[[Request], Awaitable[Response]]
T = TypeVar("T")


class Renderer:
    """Renders the UI's templates with what every page needs (the nav, login state)."""

    def __init__(self, env: SandboxedEnvironment) -> None:
        self.env = env

    def page(self, request: Request, template: str, status: int = 200, **context: Any) -> Response:
        """The template rendered as an HTML response."""
        html = self.env.get_template(template).render(
            path=request.url.path,
            logged_in=COOKIE_NAME in request.cookies,
            **context,
        )
        return HTMLResponse(html, status_code=status, headers=_NO_STORE)

    def error(self, request: Request, status: int, title: str, message: str) -> Response:
        """The error page: what went wrong and the way back."""
        return self.page(request, "error.html", status, title=title, message=message, section="")

    def not_found(self, request: Request, what: str) -> Response:
        """The 404 page for an unknown trace, session or user."""
        return self.error(request, 404, "Not found", what)


# The pages show data that may be private: keep it out of shared caches and the back cache.
_NO_STORE = {"cache-control": "no-store"}


def guarded(renderer: Renderer, handler: Handler) -> Handler:
    """The handler, answering the store's request errors with an error page, not a 500."""

    @functools.wraps(handler)
    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except NotFound as exc:
            return renderer.not_found(request, exc.message)
        except APIError as exc:
            return renderer.error(request, exc.status, "Cannot show this page", exc.message)

    return run


async def read(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call a (blocking) store method in the thread pool."""
    return await run_in_threadpool(function, *args, **kwargs)
