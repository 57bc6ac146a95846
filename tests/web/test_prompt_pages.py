"""The prompt pages over HTTP and in headless Chromium: list, prompt, diff, playground."""

from __future__ import annotations

import html as htmlmod
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from controltower.prompts import InMemoryPromptStore
from controltower.server.app import GatewayApp
from controltower.server.asgi import Receive, Scope, Send
from controltower.server.run import make_provider
from controltower.settings import Settings
from controltower.store import InMemoryStore
from controltower.web import web_routes

from .. import conftest as shared
from ..conftest import DEMO, RunningGateway, config
from . import prompts_data
from .prompts_data import NAME, TEXT_NAME


class WithPromptPages:
    """The gateway app with the prompt pages in front of it.

    What server/app.py does once it passes its prompt store to web_routes; until then
    the pages are mounted here over the same stores.
    """

    def __init__(self, app: GatewayApp, pages: Starlette) -> None:
        self.app, self.pages = app, pages

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/prompts"):
            await self.pages(scope, receive, send)
        else:
            await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def prompts() -> InMemoryPromptStore:
    return prompts_data.seed()


@pytest.fixture(scope="module")
def served(prompts: InMemoryPromptStore) -> Iterator[RunningGateway]:
    """A gateway whose prompt store holds the seeded prompts, with the prompt pages."""

    def build(settings: Settings, store: Any) -> WithPromptPages:
        app = GatewayApp(settings, make_provider, store, prompt_store=prompts)
        return WithPromptPages(app, Starlette(routes=web_routes(store, prompts)))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(shared, "build_app", build)
        with shared.running_gateway(config(DEMO), InMemoryStore()) as gw:
            yield gw


@pytest.fixture
def http(served: RunningGateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=30) as client:
        yield client


def text_of(html: str) -> str:
    return htmlmod.unescape(html)


# -- over HTTP --------------------------------------------------------------------------


def test_the_list_shows_each_prompt_with_its_newest_version_and_labels(
    http: httpx.Client,
) -> None:
    answer = http.get("/prompts")
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    html = answer.text
    assert f'href="/prompts/{NAME}" class="prompt-link"' in html
    assert f'href="/prompts/{TEXT_NAME}" class="prompt-link"' in html
    assert "#3" in html and "change 3" in html and "ana" in html
    for label in ("production", "staging", "canary"):
        assert f'#labels" title="{label}' in html
    assert 'href="/prompts" class="active"' in html  # the nav has Prompts, selected


def test_the_prompt_page_shows_versions_labels_history_and_audit(http: httpx.Client) -> None:
    answer = http.get(f"/prompts/{NAME}")
    assert answer.status_code == 200
    html = text_of(answer.text)
    assert html.count('class="version-body"') == 3
    for message in ("change 1", "change 2", "change 3"):
        assert message in html
    assert "plabel-protected" in html  # production is protected
    assert "90%" in html and "10%" in html  # the canary split on versions 2 and 3
    assert f'href="/prompts/{NAME}/diff?a=1&b=2"' in html
    # the history: production moved 1 -> 2 by ben, the split by ben
    assert html.count("<td>production</td>") == 2 and "<td>split</td>" in html
    assert "label.move" in html and "prompt.create_version" in html
    assert "Pro customers get 60 days." in html  # a version's template
    # the playground's data: each version's variables from its schema
    assert '"name":"question","type":"string","required":true' in answer.text
    assert '"enum":["free","pro"],"default":"free"' in answer.text


def test_the_audit_page_lists_every_prompt_change(http: httpx.Client) -> None:
    answer = http.get("/audit")
    assert answer.status_code == 200
    html = text_of(answer.text)
    assert "label.move" in html and "prompt.create_version" in html and "label.split" in html
    assert f'href="/prompts/{NAME}"' in html and 'href="/audit" class="active"' in html


def test_a_prompt_without_a_schema_offers_what_its_template_reads(http: httpx.Client) -> None:
    html = http.get(f"/prompts/{TEXT_NAME}").text
    assert '"variables":[{"name":"who","type":"string","required":true}]' in html
    assert "Say hello to {{ who }}." in text_of(html)
    assert "No label has moved yet." in html


def test_the_diff_page_compares_two_versions(http: httpx.Client) -> None:
    html = text_of(http.get(f"/prompts/{NAME}/diff", params={"a": "1", "b": "2"}).text)
    assert "#1 → #2" in html
    assert '<span class="dl dl-del">-You answer' in html and "30 days" in html
    assert '<span class="dl dl-add">+You answer' in html and "60 days" in html
    assert "Configuration" in html and "No change." in html  # same model and params
    # labels work too; with no parameters the newest two are compared
    html = text_of(http.get(f"/prompts/{NAME}/diff", params={"a": "production"}).text)
    assert "#2 → #3" in html and "+  temperature: 0.4" in html
    html = text_of(http.get(f"/prompts/{NAME}/diff").text)
    assert "#2 → #3" in html
    html = http.get(f"/prompts/{NAME}/diff", params={"a": "2", "b": "canary"}).text
    assert "same template and configuration" in html


def test_unknown_prompts_versions_and_labels_are_error_pages(http: httpx.Client) -> None:
    answer = http.get("/prompts/no-such-prompt")
    assert answer.status_code == 404 and "not found" in answer.text
    answer = http.get(f"/prompts/{NAME}/diff", params={"a": "9"})
    assert answer.status_code == 404
    answer = http.get(f"/prompts/{NAME}/diff", params={"a": "nope"})
    assert answer.status_code == 404 and "nope" in answer.text


def test_the_metrics_table_stays_hidden_without_the_route(
    served: RunningGateway, page: Any
) -> None:
    page.route("**/metrics", lambda route: route.fulfill(status=404, body="{}"))
    open_prompt(page, f"{served.url}/prompts/{NAME}")
    assert page.locator("#metrics").is_hidden()


def test_without_a_prompt_store_there_are_no_prompt_pages() -> None:
    from starlette.testclient import TestClient

    app = Starlette(routes=web_routes(InMemoryStore()))
    with TestClient(app) as client:
        assert client.get("/prompts").status_code == 404
        assert 'href="/prompts"' not in client.get("/traces").text


# -- in headless Chromium ---------------------------------------------------------------


def open_prompt(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("#playground[data-ready=true]")


def test_open_the_list_a_prompt_and_a_diff(served: RunningGateway, page: Any) -> None:
    page.goto(served.url + "/prompts")
    page.locator("a.prompt-link", has_text=NAME).click()
    page.wait_for_selector("#playground[data-ready=true]")
    assert page.locator("h1").inner_text() == NAME
    # the per-version metrics, one row per version, newest first, with the labels it serves
    rows = page.locator("#metrics-table tbody tr")
    assert rows.evaluate_all("trs => trs.map(tr => tr.dataset.version)") == ["3", "2", "1"]
    assert "canary, latest, staging" in rows.first.inner_text()
    page.locator("a", has_text="diff with #2").click()
    page.wait_for_url("**/diff?a=2&b=3")
    assert page.locator(".dl-add").count() >= 1
    page.fill("#diff-form input[name=a]", "1")
    page.click("#diff-form button[type=submit]")
    page.wait_for_url("**/diff?a=1&b=3")
    assert "30 days" in page.locator(".dl-del").first.inner_text()


def test_the_playground_renders_and_runs_a_version(served: RunningGateway, page: Any) -> None:
    open_prompt(page, f"{served.url}/prompts/{NAME}")
    page.select_option("#pg-target", "#1")
    fields = page.locator("#pg-vars [name]")
    assert fields.evaluate_all("els => els.map(e => e.name)") == ["question", "tier", "max_items"]
    page.click("#pg-render")  # the required question is missing: the API says so
    page.locator("#pg-msg.error").wait_for()
    assert "`question` is required" in page.locator("#pg-msg").inner_text()
    page.fill("#pg-vars [name=question]", "Can I get my money back?")
    page.select_option("#pg-vars [name=tier]", '"pro"')
    page.click("#pg-render")
    page.locator("#pg-rendered .msg-system").wait_for()
    assert "Pro customers get 30 days." in page.locator("#pg-rendered").inner_text()
    page.click("#pg-run")
    link = page.locator("#pg-answer a.pg-trace")
    link.wait_for()
    assert "Can I get my money back?" in page.locator("#pg-answer .msg-assistant").inner_text()
    trace_id = link.get_attribute("href").rsplit("/", 1)[1]
    trace = served.trace(trace_id)
    assert "playground" in trace["tags"]
    generation = next(span for span in trace["spans"] if span["kind"] == "generation")
    assert generation["model"] == "demo-model"
    # served by reference: the gateway rendered version 1 and recorded it on the span
    assert f"by reference prompt:{NAME}#1" in page.locator("#pg-answer").inner_text()
    assert (generation["prompt_name"], generation["prompt_version"]) == (NAME, 1)
    link.click()
    page.wait_for_selector("#explorer[data-ready=true]")


def test_the_playground_by_label_with_a_wrong_value(served: RunningGateway, page: Any) -> None:
    open_prompt(page, f"{served.url}/prompts/{NAME}")
    page.select_option("#pg-target", "@staging")
    page.fill("#pg-vars [name=question]", "Hi")
    page.fill("#pg-vars [name=max_items]", "many")
    page.click("#pg-run")
    page.locator("#pg-msg.error").wait_for()
    assert "`max_items` must be an integer" in page.locator("#pg-msg").inner_text()
    page.fill("#pg-vars [name=max_items]", "3")
    page.click("#pg-render")
    page.locator("#pg-rendered h3", has_text="Rendered #3").wait_for()
    assert "Pro customers" not in page.locator("#pg-rendered").inner_text()  # tier: free


def test_a_gateway_without_prompt_references_gets_the_rendered_messages(
    served: RunningGateway, page: Any
) -> None:
    def old_gateway(route: Any) -> None:
        body = route.request.post_data_json
        if body["model"].startswith("prompt:"):  # as the gateway answered before it knew them
            error = {"message": "`messages` must be a non-empty array", "param": "messages"}
            route.fulfill(status=400, json={"error": error})
        else:
            route.continue_()

    page.route("**/v1/chat/completions", old_gateway)
    open_prompt(page, f"{served.url}/prompts/{TEXT_NAME}")
    page.fill("#pg-vars [name=who]", "Ada")
    page.click("#pg-run")
    link = page.locator("#pg-answer a.pg-trace")
    link.wait_for()
    assert "inline, as model demo" in page.locator("#pg-answer").inner_text()
    assert "Say hello to Ada." in page.locator("#pg-answer .msg-assistant").inner_text()
    trace = served.trace(link.get_attribute("href").rsplit("/", 1)[1])
    assert trace["metadata"]["prompt_name"] == TEXT_NAME
    assert trace["metadata"]["prompt_version"] == 1 and "playground" in trace["tags"]
