"""The UI end to end in headless Chromium: list, filter, open a trace, select spans, score."""

from __future__ import annotations

from typing import Any

from ..conftest import RunningGateway
from . import data


def open_trace(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("#explorer[data-ready=true]")


def test_list_filter_and_open_a_trace(served: RunningGateway, page: Any) -> None:
    page.goto(served.url + "/")
    assert page.url.endswith("/traces")
    assert page.locator("a.trace-link").count() == 6
    page.fill("input[name=user]", "alice")
    page.fill("input[name=tags]", "agent")
    page.click("#trace-filters button[type=submit]")
    page.wait_for_url("**/traces?*")
    assert "user=alice" in page.url and "name=" not in page.url  # empty fields left out
    assert page.locator("a.trace-link").count() == 2
    page.locator("a.trace-link").first.click()
    page.wait_for_selector("#explorer[data-ready=true]")
    assert page.locator("h1").inner_text() == "support-agent"
    # the trace itself is selected first: its input and output in the detail pane
    assert "it is sunny in Paris" in page.locator("#detail").inner_text()


def test_select_spans_and_read_their_messages(served: RunningGateway, page: Any) -> None:
    open_trace(page, f"{served.url}/traces/{data.trace_id(1)}")
    rows = page.locator(".trow")
    assert rows.count() == 6  # the trace and its 5 spans
    page.locator(".trow", has_text="answer").click()
    detail = page.locator("#detail")
    detail.locator(".msg-system").wait_for()
    roles = detail.locator(".msg-role").all_inner_texts()
    assert [role.split()[0].lower() for role in roles] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
    ]
    assert "get_weather" in detail.locator(".toolcall").first.inner_text()
    assert "Answer 1: it is sunny in Paris." in detail.inner_text()
    assert "gpt-4o-mini" in detail.locator(".d-meta").inner_text()
    assert page.url.endswith("#span=0000000100000004")
    # the keyboard moves the selection; the JSON switch shows the raw value
    page.keyboard.press("ArrowUp")
    page.locator("#detail h2", has_text="get_weather").wait_for()
    assert '"temperature_c": 21' in detail.locator("pre.json").last.inner_text()
    page.locator(".trow", has_text="plan").click()
    detail.locator(".toolcall").wait_for()
    detail.locator(".seg button", has_text="JSON").first.click()
    assert '"role": "system"' in detail.locator("pre.json").first.inner_text()


def test_a_failed_span_shows_its_error(served: RunningGateway, page: Any) -> None:
    open_trace(page, f"{served.url}/traces/{data.ERROR_TRACE_ID}")
    page.locator(".trow.error", has_text="chat").click()
    assert "upstream_timeout" in page.locator("#detail .d-error").inner_text()


def test_add_a_score_from_the_page(served: RunningGateway, page: Any) -> None:
    trace_id = data.trace_id(2)
    open_trace(page, f"{served.url}/traces/{trace_id}")
    page.click("#score-toggle")
    page.fill("#score-form input[name=name]", "helpfulness")
    page.fill("#score-form input[name=value]", "0.8")
    page.fill("#score-form input[name=comment]", "clear and short")
    page.click("#score-form button[type=submit]")
    page.locator("#score-list .score", has_text="helpfulness").wait_for()
    assert page.locator("#score-msg").inner_text() == "Saved."
    # on a span, by selecting it first
    page.locator(".trow", has_text="get_weather").click()
    page.select_option("#score-form select[name=target]", "span")
    page.fill("#score-form input[name=name]", "tool_ok")
    page.fill("#score-form input[name=value]", "true")
    page.click("#score-form button[type=submit]")
    page.locator("#score-list .score", has_text="tool_ok").wait_for()
    stored = {score["name"]: score for score in served.store.list_scores(trace_id=trace_id)}
    assert stored["helpfulness"]["value"] == 0.8 and stored["helpfulness"]["source"] == "human"
    assert stored["helpfulness"]["comment"] == "clear and short"
    assert stored["helpfulness"]["span_id"] is None
    assert stored["tool_ok"]["value"] is True
    assert stored["tool_ok"]["span_id"] == "0000000200000003"
    # a reload shows them from the store
    open_trace(page, f"{served.url}/traces/{trace_id}")
    assert page.locator("#score-list .score").count() == 2


def test_a_rejected_score_says_why(served: RunningGateway, page: Any) -> None:
    open_trace(page, f"{served.url}/traces/{data.trace_id(3)}")
    page.click("#score-toggle")
    page.fill("#score-form input[name=name]", "quality")
    page.fill("#score-form input[name=value]", "1")
    page.fill("#score-form input[name=comment]", "x" * 10_001)  # the API caps comments
    page.click("#score-form button[type=submit]")
    message = page.locator("#score-msg.error")
    message.wait_for()
    assert message.inner_text().startswith("Not saved: `comment` must be a string")
    assert served.store.list_scores(trace_id=data.trace_id(3)) == []


def test_session_and_user_pages(served: RunningGateway, page: Any) -> None:
    page.goto(f"{served.url}/sessions")
    page.locator("a", has_text=data.SESSION).first.click()
    page.wait_for_url(f"**/sessions/{data.SESSION}")
    assert page.locator(".turn").count() == 3
    assert "And tomorrow?" in page.locator(".transcript").inner_text()
    page.locator(".stats a", has_text="alice").click()
    page.wait_for_url("**/users/alice")
    assert page.locator("a.trace-link").count() == 3
    assert "1,080" in page.locator(".stats").inner_text()


def test_a_trace_of_thousands_of_spans_opens(served: RunningGateway, page: Any) -> None:
    open_trace(page, f"{served.url}/traces/{data.BIG_TRACE_ID}")
    # only the rows in view are in the DOM, not 3,200 of them
    assert page.locator(".trow").count() < 200
    page.locator(".trow", has_text="step-1").first.click()
    detail = page.locator("#detail")
    more = detail.locator("button.more", has_text="1,500,000 characters")
    more.wait_for()
    # a span far down the tree, reached by the span search
    page.fill("#span-search", "step-3150")
    page.press("#span-search", "Enter")
    page.locator("#detail h2", has_text="step-3150").wait_for()
    assert "question 3150" in detail.inner_text()
    assert page.locator(".trow.selected", has_text="step-3150").count() == 1
    # collapse everything, then show the huge text in full
    page.click("#collapse-all")
    assert page.locator(".trow").count() == 2
    page.locator(".trow").nth(1).locator(".twisty").click()  # the root span
    page.locator(".trow", has_text="step-1").first.click()
    more.click()
    assert len(detail.locator("pre.text").inner_text()) == 1_500_000
