"""The prompt list (`/prompts`), a prompt's page, the diff of two versions, the audit log.

Prompt names may hold `/` (folders), so `/prompts/{name}/diff` is matched before
`/prompts/{name}`, as the REST API does with its keyword routes.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from controltower.prompts import PromptStore
from controltower.web.prompt_views import audit_view, diff_view, prompt_list, prompt_view
from controltower.web.views import Renderer, guarded, read


def prompt_page_routes(store: PromptStore, renderer: Renderer) -> list[BaseRoute]:
    """The routes of the prompt pages."""

    async def list_page(request: Request) -> Response:
        rows = await read(prompt_list, store)
        return renderer.page(request, "prompts.html", section="prompts", rows=rows)

    async def prompt_page(request: Request) -> Response:
        found = await read(prompt_view, store, request.path_params["name"])
        return renderer.page(request, "prompt.html", section="prompts", **found)

    async def diff_page(request: Request) -> Response:
        params = request.query_params
        name = request.path_params["name"]
        found = await read(diff_view, store, name, params.get("a"), params.get("b"))
        return renderer.page(request, "prompt_diff.html", section="prompts", **found)

    async def audit_page(request: Request) -> Response:
        events = await read(audit_view, store)
        return renderer.page(request, "audit.html", section="audit", events=events)

    return [
        Route("/audit", guarded(renderer, audit_page), include_in_schema=False),
        Route("/prompts", guarded(renderer, list_page), include_in_schema=False),
        Route("/prompts/{name:path}/diff", guarded(renderer, diff_page), include_in_schema=False),
        Route("/prompts/{name:path}", guarded(renderer, prompt_page), include_in_schema=False),
    ]
