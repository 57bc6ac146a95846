"""The eval pages in headless Chromium: chart point to a run, failed filter, compare."""

from __future__ import annotations

from typing import Any

from ..conftest import RunningGateway
from .test_eval_pages import BASE, CAND, served  # noqa: F401  (the seeded server fixture)


def test_from_the_chart_to_a_run_its_failures_and_a_comparison(
    served: RunningGateway,  # noqa: F811
    page: Any,
) -> None:
    page.goto(served.url + "/evals?name=support-qa")
    assert page.locator(".runs-table tbody tr").count() == 2
    # the candidate is the second (newer) point of the first chart
    page.locator(f'.eval-chart a[href="/evals/runs/{CAND}"] circle').first.click()
    page.wait_for_url(f"**/evals/runs/{CAND}")
    assert page.locator(".result-row").count() == 5
    page.check("#result-filters input[name=failed]")
    page.click("#result-filters button[type=submit]")
    page.wait_for_url("**failed=1*")
    rows = page.locator(".result-row")
    assert rows.count() == 3
    assert "wrong answer for q2" in rows.first.inner_text()
    # back to the list: A is the older run, B the newer, as the form preselects
    page.goto(served.url + "/evals?name=support-qa")
    page.check(f'input[name=a][value="{BASE}"]')
    page.check(f'input[name=b][value="{CAND}"]')
    page.click("#compare-submit")
    page.wait_for_url("**/evals/compare?*")
    first = page.locator(".compare-table tbody tr").first
    assert "regressed" in first.inner_text() and "q2" in first.inner_text()
    assert page.locator(".verdicts-table tbody tr").count() == 2
