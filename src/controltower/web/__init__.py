"""The web UI: server-rendered pages over the trace store."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from controltower.evals.store import EvalStore
from controltower.prompts import PromptStore
from controltower.tracing import ObservabilityStore
from controltower.web.eval_pages import eval_page_routes
from controltower.web.group_pages import group_routes
from controltower.web.login import KeyCheck, login_routes
from controltower.web.prompt_pages import prompt_page_routes
from controltower.web.render import STATIC_DIR, make_environment
from controltower.web.review_pages import review_page_routes
from controltower.web.trace_dataset import AddToDataset
from controltower.web.trace_pages import trace_routes
from controltower.web.views import COOKIE_NAME, Renderer

__all__ = ["COOKIE_NAME", "KeyCheck", "web_routes"]


def web_routes(
    store: ObservabilityStore,
    prompt_store: PromptStore | None = None,
    check_key: KeyCheck | None = None,
    eval_store: EvalStore | None = None,
) -> list[BaseRoute]:
    """The UI's pages and static files; `check_key` lets `/login` refuse a wrong key.

    The prompt pages (and their nav link) are there when `prompt_store` is given; the
    eval runs, datasets, review queues and the trace page's "Add to dataset" form when
    `eval_store` is.
    """
    env = make_environment()
    env.globals["show_prompts"] = prompt_store is not None
    env.globals["show_evals"] = eval_store is not None
    renderer = Renderer(env)
    prompt_pages = [] if prompt_store is None else prompt_page_routes(prompt_store, renderer)
    eval_pages: list[BaseRoute] = []
    dataset_form = None
    if eval_store is not None:
        dataset_form = AddToDataset(eval_store, store, renderer)
        eval_pages = [
            *eval_page_routes(eval_store, store, renderer),
            *review_page_routes(eval_store, store, renderer),
            *dataset_form.routes(),
        ]

    async def home(request: Request) -> Response:
        return RedirectResponse("/traces", status_code=307)

    return [
        Route("/", home, include_in_schema=False),
        *trace_routes(store, renderer, dataset_form),
        *group_routes(store, renderer),
        *prompt_pages,
        *eval_pages,
        *login_routes(renderer, check_key),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
