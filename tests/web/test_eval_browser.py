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


def test_filtering_runs_by_a_parameter_value_and_removing_the_filter(
    served: RunningGateway,  # noqa: F811
    page: Any,
) -> None:
    page.goto(served.url + "/evals")
    assert page.locator(".runs-table tbody tr").count() == 3
    page.locator(".runs-table a.param-link", has_text="gpt-a").click()
    page.wait_for_url("**param=model*")
    assert page.locator(".runs-table tbody tr").count() == 1
    assert page.locator(".param-filter").inner_text().startswith("model=gpt-a")
    # another filter typed in the form keeps the first: no run has both
    page.fill("#eval-filters input[name=param]:not([type=hidden])", "shard=3")
    page.select_option("#eval-filters select[name=status]", "finished")
    page.click("#eval-filters button[type=submit]")
    page.wait_for_url("**status=finished*")
    assert page.locator(".param-filter").count() == 2
    assert "No eval runs match these filters" in page.locator(".runs-table").inner_text()
    page.locator('.param-filter:has-text("model=gpt-a") a').click()
    page.wait_for_url("**param=shard*")
    assert page.locator(".runs-table tbody tr").count() == 1  # the big run, shard 3
    # a run's results worst first on one scorer
    page.goto(served.url + f"/evals/runs/{CAND}")
    page.select_option("#result-filters select[name=scorer]", "judge")
    page.click("#result-filters button[type=submit]")
    page.wait_for_url("**scorer=judge*")
    assert page.locator(".result-row").first.get_attribute("data-item") == "q4"
