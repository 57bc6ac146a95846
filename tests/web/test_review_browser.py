"""Human review in headless Chromium: make a queue of a run's failed results in the form,
score two items with the keyboard alone, watch the progress, reveal the judge's reason."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ..conftest import RunningGateway
from . import review_data


@pytest.fixture(scope="module")
def review_served() -> Iterator[RunningGateway]:
    with review_data.serving() as gw:
        yield gw


def make_queue_in_the_form(page: Any, url: str, name: str) -> None:
    page.goto(f"{url}/review")
    page.click("#new-queue > summary")
    form = page.locator("#queue-form")
    form.locator("input[name=name]").fill(name)
    form.locator("input[name=run]").fill(review_data.RUN_ID)
    form.locator("input[name=failed]").check()
    form.locator("input[name='c0.name']").fill("correct")
    form.locator("input[name='c0.instructions']").fill("Does it give the right facts?")
    form.locator("input[name='c1.name']").fill("judge")
    form.locator("select[name='c1.scale']").select_option("1-5")
    form.locator("button[type=submit]").click()
    page.wait_for_url("**/review/rq_*?created=2")


def test_score_two_items_with_the_keyboard(review_served: RunningGateway, page: Any) -> None:
    make_queue_in_the_form(page, review_served.url, "keyboard")
    assert "Queue made with 2 task(s)." in page.locator(".rv-notice").inner_text()
    assert page.locator(".rv-progress-text").first.inner_text().startswith("0 / 2")
    page.click("#start-review")
    page.fill("input[name=reviewer]", "ana")
    page.keyboard.press("Enter")
    page.wait_for_url("**/tasks/*")
    assert "How long do I have to return shoes?" in page.locator(".rv-item").inner_text()
    first = page.url

    # the judge's reason is hidden (no anchoring) until asked for
    reason = page.locator(".rv-reason").first
    assert not reason.is_visible()
    page.keyboard.press("r")
    reason.wait_for(state="visible")
    assert "The answer misses the fact (reason r2)." in reason.inner_text()
    page.keyboard.press("r")
    reason.wait_for(state="hidden")

    # ? shows the keys; the first criterion is highlighted
    page.keyboard.press("?")
    page.locator("#shortcut-help").wait_for(state="visible")
    page.keyboard.press("Escape")
    page.locator("#shortcut-help").wait_for(state="hidden")
    criteria = page.locator(".rv-criterion")
    assert "rv-focused" in (criteria.nth(0).get_attribute("class") or "")

    # f fails `correct` and moves on; 2 scores `judge`; Enter submits and opens the next
    page.keyboard.press("f")
    assert "rv-focused" in (criteria.nth(1).get_attribute("class") or "")
    page.keyboard.press("2")
    assert page.locator("input[name='c.judge'][value='2']").is_checked()
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: url != first and "/tasks/" in url)
    assert "Do you ship to Canada?" in page.locator(".rv-item").inner_text()
    assert page.locator(".rv-progress-text").inner_text().startswith("1 / 2")

    # Enter before every criterion has a score says so and submits nothing
    page.keyboard.press("p")
    page.keyboard.press("Enter")
    assert "judge has no score" in page.locator("#score-msg").inner_text()
    # k goes back (a digit does nothing on pass/fail), j forward; 4 and Enter finish
    page.keyboard.press("k")
    assert "rv-focused" in (criteria.nth(0).get_attribute("class") or "")
    page.keyboard.press("3")
    assert not page.locator("input[name='c.judge']:checked").count()
    page.keyboard.press("j")
    page.keyboard.press("4")
    page.keyboard.press("c")
    page.keyboard.type("a guess")
    page.keyboard.press("Control+Enter")
    page.wait_for_url("**/review/rq_*?finished=1")
    assert page.locator(".rv-progress-text").first.inner_text().startswith("2 / 2")
    assert page.locator(".rv-tasks .rv-status-done").count() == 2

    queue_id = page.url.split("/review/")[1].split("?")[0]
    scores = review_served.store.eval_store().human_scores(queue_id=queue_id)
    assert [(s.item.item_id, s.values, s.comment) for s in scores] == [
        ("r2", {"correct": 0.0, "judge": 2.0}, None),
        ("r4", {"correct": 1.0, "judge": 4.0}, "a guess"),
    ]


def test_s_skips_and_the_skip_shows_in_the_queue(review_served: RunningGateway, page: Any) -> None:
    make_queue_in_the_form(page, review_served.url, "skipping")
    page.click("#start-review")
    page.fill("input[name=reviewer]", "bo")
    page.keyboard.press("Enter")
    page.wait_for_url("**/tasks/*")
    first = page.url
    page.keyboard.press("s")
    page.wait_for_url(lambda url: url != first and "/tasks/" in url)
    assert page.locator(".rv-progress-text").inner_text().startswith("1 / 2")
    page.click("text=Back to the queue")
    assert page.locator(".rv-tasks .rv-status-skipped").count() == 1


def test_the_new_queue_form_adds_rubric_rows(review_served: RunningGateway, page: Any) -> None:
    page.goto(f"{review_served.url}/review?new=1")
    rows = page.locator(".rv-criterion-row")
    assert rows.count() == 4
    page.click("text=Add a criterion")
    assert rows.count() == 5
    assert page.locator("input[name='c4.name']").evaluate("el => el === document.activeElement")
