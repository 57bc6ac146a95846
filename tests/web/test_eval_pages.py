"""The eval and dataset pages over HTTP against the real server: runs, a run, compare."""

from __future__ import annotations

import html as htmlmod
import re
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controltower.domain.dataset import DatasetItem
from controltower.domain.evaluation import EvalResult, EvalRun, Verdict
from controltower.errors import InvalidRequest
from controltower.evals.store import EvalStore
from controltower.evals.summary import scorer_summary
from controltower.store import InMemoryStore, open_store
from controltower.web.eval_views import MAX_PAGE, RunFilters, page_number, runs_view

from ..conftest import DEMO, RunningGateway, config, running_gateway

DATASET = "qa/support"
BASE, CAND, BIG = "run-base-0001", "run-cand-0002", "run-big-0003"
T0 = 1_780_000_000_000_000
ITEMS = [
    DatasetItem(f"q{i}", input=f"question number {i}", expected=f"answer {i}") for i in range(1, 6)
]
# item -> (exact passed, judge value or None for a judge error) in the baseline and candidate
BASE_SCORES: dict[str, tuple[bool, int | None]] = {
    "q1": (True, 4),
    "q2": (True, 4),
    "q3": (True, 5),
    "q4": (True, 4),
    "q5": (False, 3),
}
CAND_SCORES: dict[str, tuple[bool, int | None]] = {
    "q1": (True, 4),
    "q2": (False, 2),
    "q3": (False, 5),
    "q4": (True, None),
    "q5": (True, 3),
}


def _results(run_id: str, scores: dict[str, tuple[bool, int | None]]) -> list[EvalResult]:
    out = []
    for n, (item_id, (ok, judge)) in enumerate(scores.items()):
        verdict = Verdict.failed("judge reply unparsable") if judge is None else Verdict(judge)
        reason = "matches" if ok else f"wrong answer for {item_id}"
        out.append(
            EvalResult(
                run_id,
                item_id,
                0,
                "ok",
                text=f"{run_id} says {item_id}",
                trace_id=f"{run_id[-4:]}{n:028x}",
                scores={"exact": Verdict.of_bool(ok, reason), "judge": verdict},
            )
        )
    return out


def _run(run_id: str, name: str, offset: int, model: str, results: list[EvalResult]) -> EvalRun:
    summary = {
        "items": len(results),
        "results": len(results),
        "target_errors": sum(r.status == "error" for r in results),
        "scorers": {
            "exact": scorer_summary("exact", "binary", results, None),
            "judge": scorer_summary("judge", "numeric", results, 3.0),
        },
    }
    record = {
        "eval": {"name": name, "commit": "abc1234def", "branch": "main"},
        "dataset": {"name": DATASET, "version": 2, "hash": "f" * 64, "items": 5},
        "target": {"kind": "model", "model": model, "resolved": {"model": model}},
        "scorers": [
            {"type": "exact", "name": "exact", "config": {}},
            {
                "type": "judge",
                "name": "judge",
                "config": {},
                "judge_model": "judge-1",
                "judge_prompt_hash": "9" * 64,
            },
        ],
        "cache": "read-write",
    }
    return EvalRun(
        run_id, name, T0 + offset, "fp", "finished", record,
        {"dataset": f"{DATASET}#2", "model": model}, summary,
        branch="main", commit="abc1234def",
    )  # fmt: skip


def seed_evals(store: EvalStore) -> None:
    """A dataset with two versions, two runs of one eval (B regressing) and a big run."""
    store.push_dataset(DATASET, ITEMS[:3], message="first three")
    store.push_dataset(DATASET, ITEMS, message="all five")
    for run_id, offset, model, scores in (
        (BASE, 0, "gpt-a", BASE_SCORES),
        (CAND, 10, "gpt-b", CAND_SCORES),
    ):
        results = _results(run_id, scores)
        store.create_run(_run(run_id, "support-qa", offset, model, results))
        store.write_results(results)
    big = [_big_result(i) for i in range(150)]
    run = EvalRun(BIG, "other-eval", T0 + 20, "fp2", "finished", {}, {"shard": 3},
                  {"scorers": {"exact": scorer_summary("exact", "binary", big, None)}})  # fmt: skip
    store.create_run(run)
    store.write_results(big)


def _big_result(i: int) -> EvalResult:
    if i == 7:
        return EvalResult(BIG, f"item-{i:03d}", 0, "error", error="timeout")
    scores = {"exact": Verdict.of_bool(True)}
    return EvalResult(BIG, f"item-{i:03d}", 0, "ok", text=f"big output {i}", scores=scores)


@pytest.fixture(scope="module")
def served() -> Iterator[RunningGateway]:
    """The real server over an in-memory store holding the seeded datasets and runs."""
    store = InMemoryStore()
    seed_evals(store.eval_store())
    with running_gateway(config(DEMO), store) as gw:
        yield gw


@pytest.fixture
def http(served: RunningGateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=30) as client:
        yield client


def text(answer: httpx.Response) -> str:
    assert answer.status_code == 200, answer.text[:500]
    return htmlmod.unescape(answer.text)


def run_ids(html: str) -> list[str]:
    return re.findall(r'class="mono run-link" href="/evals/runs/([^"]+)"', html)


# -- the runs list ---------------------------------------------------------------------


def test_the_runs_list_shows_runs_newest_first_with_params_and_scorers(http: httpx.Client) -> None:
    answer = http.get("/evals")
    html = text(answer)
    assert answer.headers["cache-control"] == "no-store"
    assert run_ids(html) == [BIG, CAND, BASE]
    assert "gpt-a" in html and "gpt-b" in html and f"{DATASET}#2" in html
    assert "80% pass" in html and "60% pass" in html  # exact: 4/5 then 3/5
    assert 'href="/evals" class="active"' in html and 'href="/datasets"' in html
    assert "abc1234" in html and "main" in html


def test_the_charts_link_each_point_to_its_run_in_time_order(http: httpx.Client) -> None:
    html = text(http.get("/evals?name=support-qa"))
    assert html.count('<svg class="chart"') == 2  # exact and judge
    assert re.findall(r'<a href="/evals/runs/([^"]+)"><circle', html)[:2] == [BASE, CAND]
    assert f"<title>{BASE} · support-qa (" in html and "exact = 0.8</title>" in html
    assert '<script src="http' not in html  # nothing from a CDN


def test_the_name_filter_and_the_sorts(http: httpx.Client) -> None:
    assert run_ids(text(http.get("/evals?name=other-eval"))) == [BIG]
    assert run_ids(text(http.get("/evals?sort=scorer:exact&desc=1"))) == [BIG, BASE, CAND]
    assert run_ids(text(http.get("/evals?sort=scorer:exact"))) == [CAND, BASE, BIG]
    assert run_ids(text(http.get("/evals?sort=param:model"))) == [BASE, CAND, BIG]  # none last
    assert run_ids(text(http.get("/evals?sort=created"))) == [BASE, CAND, BIG]


def test_branch_status_and_parameter_filters(http: httpx.Client) -> None:
    assert run_ids(text(http.get("/evals?branch=main"))) == [CAND, BASE]
    assert run_ids(text(http.get("/evals?status=finished"))) == [BIG, CAND, BASE]
    assert run_ids(text(http.get("/evals?status=running"))) == []
    assert run_ids(text(http.get("/evals?param=model%3Dgpt-a"))) == [BASE]
    both = f"/evals?param=model%3Dgpt-b&param=dataset%3D{DATASET}%232"
    html = text(http.get(both))
    assert run_ids(html) == [CAND]
    assert "model=gpt-b" in html and "match these filters" not in html  # the filter chips
    assert run_ids(text(http.get("/evals?param=model%3Dgpt-z"))) == []
    assert "No eval runs match these filters" in text(http.get("/evals?param=shard%3D4"))
    # each parameter value links to the runs that share it
    assert 'href="/evals?param=model%3Dgpt-a"' in text(http.get("/evals"))


@pytest.mark.parametrize(
    "query", ["status=done", "param=model", "param=%3Dx", "before=12", "before=x:y"]
)
def test_bad_run_filters_are_a_clear_400(http: httpx.Client, query: str) -> None:
    answer = http.get(f"/evals?{query}")
    assert answer.status_code == 400, answer.text[:300]


def _many_runs(store: EvalStore, count: int) -> list[str]:
    ids = []
    for i in range(count):
        run_id = f"run-{i:04d}"
        params = {"model": "fast" if i % 2 else "slow"}
        store.create_run(EvalRun(run_id, "many", T0 + i, "fp", "finished", {}, params, {}))
        ids.append(run_id)
    return ids[::-1]  # newest first


def _pages(http: httpx.Client, url: str) -> list[list[str]]:
    pages = []
    while url:
        html = text(http.get(url))
        pages.append(run_ids(html))
        found = re.search(r'id="older-runs" href="([^"]+)"', html)
        url = found.group(1) if found else ""  # text() has unescaped the page
        assert len(pages) < 10
    return pages


@pytest.mark.parametrize(
    "backend", ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_the_runs_list_pages_past_any_count(request: pytest.FixtureRequest, backend: str) -> None:
    store = (
        InMemoryStore()
        if backend == "memory"
        else open_store(request.getfixturevalue(f"{backend}_url"))
    )
    try:
        newest_first = _many_runs(store.eval_store(), 250)
        with running_gateway(config(DEMO), store) as gw, httpx.Client(base_url=gw.url) as http:
            pages = _pages(http, "/evals?name=many")
            assert [len(p) for p in pages] == [100, 100, 50]
            assert [r for p in pages for r in p] == newest_first
            fast = _pages(http, "/evals?name=many&param=model%3Dfast")
            assert [len(p) for p in fast] == [100, 25]
            assert [r for p in fast for r in p] == newest_first[::2]
            assert "Newest runs" in text(http.get(f"/evals?before={T0 + 100}:run-0100"))
    finally:
        store.close()


def test_a_bad_sort_is_a_clear_400(http: httpx.Client) -> None:
    answer = http.get("/evals?sort=nonsense")
    assert answer.status_code == 400 and "cannot sort by" in htmlmod.unescape(answer.text)


# -- one run -----------------------------------------------------------------------------


def test_the_run_page_shows_the_record_summary_and_results(http: httpx.Client) -> None:
    html = text(http.get(f"/evals/runs/{CAND}"))
    assert f"{DATASET}#2" in html and "f" * 12 in html and "judge-1" in html
    assert "9" * 12 in html and "abc1234def" in html and "read-write" in html
    assert html.count('class="result-row') == 5
    assert "question number 2" in html and "answer 2" in html  # from the dataset version
    assert "wrong answer for q2" in html and "judge reply unparsable" in html
    assert f'href="/traces/{CAND[-4:]}{1:028x}"' in html
    assert "≥ 3 met" in html
    assert f'href="/evals/compare?a={BASE}&b={CAND}"' in html  # with the previous run
    assert "compare-previous" not in text(http.get(f"/evals/runs/{BASE}"))


def test_the_scorer_filter_narrows_failed_and_orders_worst_first(http: httpx.Client) -> None:
    items = lambda html: re.findall(r'class="result-row[^"]*" data-item="([^"]+)"', html)  # noqa: E731
    assert items(text(http.get(f"/evals/runs/{CAND}?failed=1&scorer=judge"))) == ["q4"]
    assert items(text(http.get(f"/evals/runs/{CAND}?failed=1&scorer=exact"))) == ["q2", "q3"]
    # the judge's error first, then its scores from the lowest
    assert items(text(http.get(f"/evals/runs/{CAND}?scorer=judge"))) == [
        "q4",
        "q2",
        "q5",
        "q1",
        "q3",
    ]
    answer = http.get(f"/evals/runs/{CAND}?scorer=nope")
    assert answer.status_code == 400 and "no scorer 'nope'" in htmlmod.unescape(answer.text)


def test_the_failed_filter_and_the_search(http: httpx.Client) -> None:
    html = text(http.get(f"/evals/runs/{CAND}?failed=1"))
    assert re.findall(r'data-item="([^"]+)"', html) == ["q2", "q3", "q4"]
    html = text(http.get(f"/evals/runs/{CAND}?q=NUMBER 5"))
    assert re.findall(r'data-item="([^"]+)"', html) == ["q5"]
    html = text(http.get(f"/evals/runs/{CAND}?q=nothing-like-this"))
    assert "No results match these filters." in html


def test_results_come_in_pages_of_100(http: httpx.Client) -> None:
    first = text(http.get(f"/evals/runs/{BIG}"))
    assert first.count('class="result-row') == 100 and "page=2" in first
    assert "are not stored" in first  # no dataset recorded
    second = text(http.get(f"/evals/runs/{BIG}?page=2"))
    assert second.count('class="result-row') == 50 and "Next page" not in second
    failed = text(http.get(f"/evals/runs/{BIG}?failed=1"))
    assert re.findall(r'data-item="([^"]+)"', failed) == ["item-007"] and "timeout" in failed


@pytest.mark.parametrize("query", ["page=abc", "page=0", "page=-1"])
def test_a_bad_page_is_a_clear_400(http: httpx.Client, query: str) -> None:
    answer = http.get(f"/evals/runs/{CAND}?{query}")
    assert answer.status_code == 400 and "page must be a whole number" in answer.text


def test_an_unknown_run_is_a_404_page(http: httpx.Client) -> None:
    answer = http.get("/evals/runs/no-such-run")
    assert answer.status_code == 404 and "Not found" in answer.text
    assert http.get(f"/evals/compare?a={BASE}&b=no-such-run").status_code == 404


# -- compare -------------------------------------------------------------------------------


def test_compare_gives_verdicts_and_lists_regressions_first(http: httpx.Client) -> None:
    html = text(http.get(f"/evals/compare?a={BASE}&b={CAND}"))
    assert re.findall(r'class="diff-row diff-(\w+)" data-item="(\w+)"', html) == [
        ("regressed", "q2"),
        ("regressed", "q3"),
        ("improved", "q5"),
        ("unchanged", "q1"),
        ("unchanged", "q4"),
    ]
    assert html.count('class="verdict-row') == 2
    assert "mcnemar-exact" in html and "MDE" in html
    assert f'href="/traces/{BASE[-4:]}{1:028x}"' in html
    assert f'href="/traces/{CAND[-4:]}{1:028x}"' in html
    assert "2 regressed, 1 improved" in html
    assert "built-in method" not in html  # every figure is a value
    assert re.search(r'<td class="num">5</td><td class="mono dim">mcnemar-exact', html)


def test_compare_needs_two_runs(http: httpx.Client) -> None:
    answer = http.get(f"/evals/compare?a={BASE}")
    assert answer.status_code == 400 and "give two runs" in answer.text


# -- datasets ------------------------------------------------------------------------------


def test_the_dataset_list_and_a_dataset_with_its_versions(http: httpx.Client) -> None:
    html = text(http.get("/datasets"))
    assert f'href="/datasets/{DATASET}"' in html and "all five" in html
    html = text(http.get(f"/datasets/{DATASET}"))
    assert "first three" in html and "all five" in html
    assert "Items of #2" in html and html.count("question number") == 5
    assert re.search(r'<td class="num">5</td>', html) and "built-in method" not in html
    html = text(http.get(f"/datasets/{DATASET}?version=1"))
    assert "Items of #1" in html and html.count("question number") == 3


def test_bad_dataset_requests(http: httpx.Client) -> None:
    assert http.get("/datasets/no-such").status_code == 404
    assert http.get(f"/datasets/{DATASET}?version=9").status_code == 404
    assert http.get(f"/datasets/{DATASET}?version=x").status_code == 400
    assert http.get(f"/datasets/{DATASET}?page=x").status_code == 400


# -- outside input -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def evals() -> EvalStore:
    store = InMemoryStore().eval_store()
    seed_evals(store)
    return store


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.text(max_size=30) | st.integers().map(str) | st.just("9" * 5000))
def test_any_page_is_a_page_or_a_clear_error(raw: str) -> None:
    try:
        number = page_number(raw)
    except InvalidRequest as exc:
        assert exc.status == 400 and "page must be" in exc.message
    else:
        assert 1 <= number <= MAX_PAGE


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sort=st.text(max_size=30) | st.sampled_from(["scorer:", "param:", "scorer:exact:x"]),
    desc=st.booleans(),
)
def test_any_sort_sorts_or_is_a_clear_error(evals: EvalStore, sort: str, desc: bool) -> None:
    try:
        found = runs_view(evals, RunFilters(), sort, desc)
    except InvalidRequest as exc:
        assert exc.status == 400 and "cannot sort by" in exc.message
    else:
        assert sorted(row["id"] for row in found["rows"]) == sorted([BASE, CAND, BIG])


@pytest.mark.parametrize("query", ["version=²", "version=" + "9" * 5000, "page=" + "9" * 5000])
def test_odd_numbers_in_dataset_queries_are_a_400(http: httpx.Client, query: str) -> None:
    assert http.get(f"/datasets/{DATASET}?{query}").status_code == 400


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_the_pages_over_a_database(request: pytest.FixtureRequest, backend: str) -> None:
    store = open_store(request.getfixturevalue(f"{backend}_url"))
    try:
        seed_evals(store.eval_store())
        with running_gateway(config(DEMO), store) as gw, httpx.Client(base_url=gw.url) as http:
            assert run_ids(text(http.get("/evals?sort=scorer:exact&desc=1"))) == [BIG, BASE, CAND]
            assert "wrong answer for q2" in text(http.get(f"/evals/runs/{CAND}?failed=1"))
            compared = text(http.get(f"/evals/compare?a={BASE}&b={CAND}"))
            assert compared.index('data-item="q2"') < compared.index('data-item="q5"')
            assert "all five" in text(http.get(f"/datasets/{DATASET}"))
            assert http.get("/evals/runs/nope").status_code == 404
    finally:
        store.close()
