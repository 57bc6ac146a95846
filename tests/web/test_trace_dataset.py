"""The trace page's "Add to dataset" form: in headless Chromium (add a trace to a new
dataset, land on its page, add it again), and its refusals over plain HTTP."""

from __future__ import annotations

import re
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.testclient import TestClient

from controltower.store import InMemoryStore
from controltower.web import web_routes

from ..conftest import RunningGateway
from . import data

TRACE = data.trace_id(1)


def evals(served: RunningGateway) -> Any:
    return served.store.eval_store()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert found is not None, "no CSRF token in the page"
    return found.group(1)


def test_add_from_the_trace_page_then_again(served: RunningGateway, page: Any) -> None:
    page.goto(f"{served.url}/traces/{TRACE}")
    form = page.locator("#dataset-form")
    assert form.locator("input[name=expected]").is_checked()
    form.locator("input[name=dataset]").fill("from-ui")
    form.locator("button[type=submit]").click()
    page.wait_for_url("**/datasets/from-ui?*")
    notice = page.locator("#dataset-notice").inner_text()
    assert notice == f"trace-{TRACE} added: dataset from-ui #1"
    row = page.locator(".dataset-items-table tbody tr").first.inner_text()
    assert f"trace-{TRACE}" in row and "Answer 1: it is sunny in Paris." in row

    # the second time the dataset is in the form's list, and the trace is there already
    page.goto(f"{served.url}/traces/{TRACE}")
    options = page.locator("#dataset-names option")
    assert [options.nth(i).get_attribute("value") for i in range(options.count())] == ["from-ui"]
    page.locator("#dataset-form input[name=dataset]").fill("from-ui")
    page.locator("#dataset-form button[type=submit]").click()
    page.wait_for_url("**/datasets/from-ui?*")
    assert "already in from-ui #1" in page.locator("#dataset-notice").inner_text()
    assert page.locator(".dataset-items-table tbody tr").count() == 1

    versions = evals(served).list_dataset_versions("from-ui")
    assert [(v.version, v.message) for v in versions] == [(1, f"trace {TRACE} added from the UI")]


def test_without_expected_and_a_second_trace(served: RunningGateway, http: httpx.Client) -> None:
    token = csrf_of(http.get(f"/traces/{TRACE}").text)
    other = data.trace_id(2)
    for trace in (TRACE, other):
        answer = http.post(
            f"/traces/{trace}/dataset", data={"csrf": token, "dataset": "unlabelled"}
        )
        assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == f"/datasets/unlabelled?version=2&added=trace-{other}"
    items = evals(served).dataset_items("unlabelled", 2)
    assert [(i.id, i.expected) for i in items] == [
        (f"trace-{TRACE}", None),
        (f"trace-{other}", None),
    ]
    shown = http.get(answer.headers["location"]).text
    assert f"trace-{other} added: dataset unlabelled #2" in shown


def test_a_post_without_the_token_is_refused(served: RunningGateway, http: httpx.Client) -> None:
    form = {"dataset": "forged", "expected": "1"}
    assert http.post(f"/traces/{TRACE}/dataset", data=form).status_code == 403
    http.get(f"/traces/{TRACE}")  # the CSRF cookie is set, the token is still missing
    assert http.post(f"/traces/{TRACE}/dataset", data=form).status_code == 403
    forged = {**form, "csrf": "0" * 64}
    assert http.post(f"/traces/{TRACE}/dataset", data=forged).status_code == 403
    assert [v.dataset for v in evals(served).list_datasets()].count("forged") == 0


def test_a_bad_name_is_a_400_with_the_name_kept(served: RunningGateway, http: httpx.Client) -> None:
    token = csrf_of(http.get(f"/traces/{TRACE}").text)
    answer = http.post(f"/traces/{TRACE}/dataset", data={"csrf": token, "dataset": "Bad Name!"})
    assert answer.status_code == 400
    assert 'id="dataset-error"' in answer.text and "invalid dataset name" in answer.text
    assert 'value="Bad Name!"' in answer.text
    assert 'name="expected" value="1">' in answer.text  # unchecked, as it was posted
    missing = http.post(f"/traces/{'f' * 32}/dataset", data={"csrf": token, "dataset": "x"})
    assert missing.status_code == 404


def test_without_an_eval_store_the_trace_page_has_no_form() -> None:
    store = InMemoryStore()
    data.seed(store)
    with TestClient(Starlette(routes=web_routes(store))) as http:
        answer = http.get(f"/traces/{TRACE}")
        assert answer.status_code == 200
        assert "dataset-form" not in answer.text
        assert http.post(f"/traces/{TRACE}/dataset", data={"dataset": "x"}).status_code == 404
