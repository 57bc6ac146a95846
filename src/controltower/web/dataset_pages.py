"""The dataset pages: every dataset, and one dataset's versions and items."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from controltower.domain.dataset import MAX_ITEM_ID, DatasetVersion
from controltower.errors import InvalidRequest
from controltower.evals.store import DatasetStore
from controltower.store.serialize import us_to_iso
from controltower.web.eval_views import PAGE_SIZE, page_number
from controltower.web.views import Renderer, guarded, read

# a version number beyond what a database integer holds is no version
MAX_VERSION = 2**31 - 1


def dataset_page_routes(store: DatasetStore, renderer: Renderer) -> list[BaseRoute]:
    """The routes of the dataset pages."""

    async def list_page(request: Request) -> Response:
        rows = await read(dataset_list, store)
        return renderer.page(request, "datasets.html", section="datasets", rows=rows)

    async def dataset_page(request: Request) -> Response:
        params = request.query_params
        version = _version_number(params.get("version"))
        page = page_number(params.get("page"))
        name = request.path_params["name"]
        found = await read(dataset_view, store, name, version, page)
        # what the trace page's "Add to dataset" did (`trace_dataset`)
        notice = {key: params.get(key, "")[:MAX_ITEM_ID] for key in ("added", "present")}
        query = {k: v for k, v in params.items() if k not in notice}
        return renderer.page(
            request,
            "dataset.html",
            section="datasets",
            query_params=query,
            notice=notice,
            **found,
        )

    return [
        Route("/datasets", guarded(renderer, list_page), include_in_schema=False),
        Route("/datasets/{name:path}", guarded(renderer, dataset_page), include_in_schema=False),
    ]


def dataset_list(store: DatasetStore) -> list[dict[str, Any]]:
    """One row per dataset: its newest version."""
    return [_version_row(v) for v in store.list_datasets()]


def dataset_view(store: DatasetStore, name: str, version: int | None, page: int) -> dict[str, Any]:
    """A dataset's versions, and one page of the items of one version (the newest by default)."""
    versions = store.list_dataset_versions(name)
    shown = store.dataset_version(name, version=version) if version else versions[0]
    items = store.dataset_items(name, shown.version)
    start = (page - 1) * PAGE_SIZE
    return {
        "name": name,
        "versions": [_version_row(v) for v in versions],
        "shown": _version_row(shown),
        "items": [item.as_json() for item in items[start : start + PAGE_SIZE]],
        "total": len(items),
        "page": page,
        "has_next": start + PAGE_SIZE < len(items),
    }


def _version_number(raw: str | None) -> int | None:
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 10) or not 1 <= int(raw) <= MAX_VERSION:
        raise InvalidRequest(f"version must be a number from 1, not {raw[:40]!r}", param="version")
    return int(raw)


def _version_row(version: DatasetVersion) -> dict[str, Any]:
    return {
        "name": version.dataset,
        "version": version.version,
        "hash": version.hash,
        "item_count": version.item_count,
        "tags": list(version.tags),
        "message": version.message,
        "created_time": us_to_iso(version.created_us),
    }
