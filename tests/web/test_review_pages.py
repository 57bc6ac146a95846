"""The review pages over HTTP, without a script: make queues, assign, score, skip, export;
CSRF tokens bound to the browser's session; mistakes answered with the form kept."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from controltower.domain.evaluation import EvalResult, EvalRun

from ..conftest import RunningGateway
from . import data, review_data

RUBRIC = {
    "c0.name": "correct",
    "c0.scale": "pass-fail",
    "c0.instructions": "Does it give the right facts?",
    "c1.name": "judge",
    "c1.scale": "1-5",
    "c1.labels": "wrong, poor, fair, good, perfect",
}


@pytest.fixture(scope="module")
def review_served() -> Iterator[RunningGateway]:
    """A gateway whose store holds the seeded traces and a judged eval run."""
    with review_data.serving() as gw:
        yield gw


@pytest.fixture
def client(review_served: RunningGateway) -> Iterator[httpx.Client]:
    """A browser-like client: it keeps cookies and does not follow redirects."""
    with httpx.Client(base_url=review_served.url, timeout=30) as made:
        yield made


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert found is not None, "no CSRF token in the page"
    return found.group(1)


def token(client: httpx.Client) -> str:
    return csrf_of(client.get("/review").text)


def make_queue(client: httpx.Client, name: str, **fields: str) -> str:
    form = {"csrf": token(client), "name": name, "from": "run", "run": review_data.RUN_ID}
    answer = client.post("/review", data={**form, **RUBRIC, **fields})
    assert answer.status_code == 303, answer.text
    return answer.headers["location"].split("?")[0].rsplit("/", 1)[1]


def be(client: httpx.Client, name: str) -> None:
    answer = client.post("/review/reviewer", data={"csrf": token(client), "reviewer": name})
    assert answer.status_code == 303


def next_task(client: httpx.Client, queue_id: str) -> str:
    answer = client.get(f"/review/{queue_id}/next")
    assert answer.status_code == 303
    return str(answer.headers["location"])


def evals(served: RunningGateway) -> Any:
    return served.store.eval_store()


def test_the_queue_list_and_its_nav_link(client: httpx.Client) -> None:
    answer = client.get("/review")
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    assert '<a href="/review" class="active">Review</a>' in answer.text
    assert 'name="c3.name"' in answer.text  # four rubric rows
    assert review_data.RUN_ID in answer.text  # a recent run to pick
    assert "controltower_csrf=" in answer.headers.get("set-cookie", "")


def test_a_queue_of_a_runs_failed_results(
    review_served: RunningGateway, client: httpx.Client
) -> None:
    queue_id = make_queue(client, "failed-refunds", failed="1")
    queue = evals(review_served).get_queue(queue_id)
    assert [c.name for c in queue.rubric] == ["correct", "judge"]
    assert queue.rubric[1].labels == ("wrong", "poor", "fair", "good", "perfect")
    assert queue.source.failed_only and queue.project == "default"
    page = client.get(f"/review/{queue_id}?created=2")
    assert page.status_code == 200 and "Queue made with 2 task(s)." in page.text
    items = [t.item.item_id for t in evals(review_served).list_tasks(queue_id)]
    assert items == ["r2", "r4"]  # the two the checks failed
    assert "item r2 #0" in page.text and "0 / 2" in page.text


def test_a_seeded_sample_and_a_queue_of_traces(
    review_served: RunningGateway, client: httpx.Client
) -> None:
    sampled = make_queue(client, "sampled", sample="3", seed="7")
    again = make_queue(client, "sampled-again", sample="3", seed="7")
    store = evals(review_served)
    assert [t.item for t in store.list_tasks(sampled)] == [t.item for t in store.list_tasks(again)]
    assert len(store.list_tasks(sampled)) == 3
    form = {"csrf": token(client), "name": "alice-traces", "from": "traces"}
    answer = client.post(
        "/review", data={**form, **RUBRIC, "filter": "user=alice&name=support-agent"}
    )
    assert answer.status_code == 303
    queue_id = answer.headers["location"].split("?")[0].rsplit("/", 1)[1]
    tasks = store.list_tasks(queue_id)
    assert len(tasks) == 3 and all(t.item.trace_id for t in tasks)
    assert store.get_queue(queue_id).source.trace_filter == {
        "user": "alice",
        "name": "support-agent",
    }


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"run": "run_nope"}, "no eval run &#39;run_nope&#39;"),
        ({"c0.scale": "1-99"}, "is not a scale"),
        ({"c0.name": "", "c1.name": ""}, "the rubric needs a criterion"),
        ({"c1.labels": "a, b"}, "2 labels for a scale of 5 points"),
        ({"name": "Bad Name"}, "invalid review queue name"),
        ({"from": "traces", "filter": "colour=red"}, "&#39;colour&#39; is not a trace filter"),
        ({"from": "traces", "filter": "since=yesterday"}, "since must be an ISO date"),
        ({"from": "traces", "filter": "user=nobody"}, "no trace matches"),
        ({"sample": "zero"}, "sample must be a whole number"),
        ({"rubric_yaml": "criteria: 3"}, "give a list of criteria"),
    ],
)
def test_mistakes_in_the_form_say_what_is_wrong(
    client: httpx.Client, fields: dict[str, str], message: str
) -> None:
    form = {"csrf": token(client), "name": "broken", "from": "run", "run": review_data.RUN_ID}
    answer = client.post("/review", data={**form, **RUBRIC, **fields})
    assert answer.status_code in (400, 404)
    assert message in answer.text
    assert 'value="Does it give the right facts?"' in answer.text  # the form as typed
    assert '<details class="rv-new" id="new-queue" open>' in answer.text


def test_forms_without_the_sessions_token_are_refused(
    review_served: RunningGateway, client: httpx.Client
) -> None:
    before = len(evals(review_served).list_queues())
    form = {"name": "forged", "from": "run", "run": review_data.RUN_ID, **RUBRIC}
    assert client.post("/review", data=form).status_code == 403
    assert client.post("/review", data={**form, "csrf": "0" * 64}).status_code == 403
    good = token(client)
    # the token is bound to the session: under another session cookie it no longer works
    client.cookies.set("controltower_key", "9999999999.other-session")
    assert client.post("/review", data={**form, "csrf": good}).status_code == 403
    assert len(evals(review_served).list_queues()) == before


def test_review_score_skip_and_finish(review_served: RunningGateway, client: httpx.Client) -> None:
    queue_id = make_queue(client, "walkthrough", failed="1")
    # without a name, the reviewer is asked for one first
    answer = client.get(f"/review/{queue_id}/next")
    assert answer.status_code == 200 and "Who is reviewing?" in answer.text
    be(client, "ana")
    first = next_task(client, queue_id)
    page = client.get(first)
    html = page.text
    assert page.status_code == 200 and 'reviewing as <strong class="rv-me">ana' in html
    assert "How long do I have to return shoes?" in html and "Returns are accepted." in html
    assert "30 days" in html  # the expected answer
    # the judge's reason is on the page, folded away until asked for
    assert re.search(r'<details class="rv-block rv-judge" id="judge-panel">', html)
    assert "The answer misses the fact (reason r2)." in html
    assert f'href="/traces/{data.trace_id(2)}"' in html
    assert 'name="c.correct" value="pass"' in html and 'data-key="5"' in html
    csrf = csrf_of(html)
    # a score that does not fit the rubric is refused, the choices kept
    answer = client.post(first, data={"csrf": csrf, "c.correct": "fail", "comment": "short"})
    assert answer.status_code == 400 and "missing: judge" in answer.text
    assert (
        re.search(r'value="fail"[^>]*checked', answer.text) and ">short</textarea>" in answer.text
    )
    answer = client.post(
        first, data={"csrf": csrf, "c.correct": "fail", "c.judge": "2", "comment": "no window"}
    )
    assert answer.status_code == 303 and answer.headers["location"].endswith("/next")
    second = next_task(client, queue_id)
    assert second != first
    answer = client.post(second, data={"csrf": csrf, "action": "skip"})
    assert answer.status_code == 303
    answer = client.get(f"/review/{queue_id}/next")
    assert answer.headers["location"] == f"/review/{queue_id}?finished=1"
    store = evals(review_served)
    (score,) = store.human_scores(queue_id=queue_id)
    assert score.values == {"correct": 0.0, "judge": 2.0} and score.reviewer == "ana"
    assert score.comment == "no window"
    progress = store.queue_progress(queue_id)
    assert (progress.done, progress.skipped, progress.left) == (1, 1, 0)
    # the scores also went to the answer's trace, as human scores
    on_trace = {s["name"]: s for s in review_served.store.list_scores(trace_id=data.trace_id(2))}
    assert on_trace["correct"]["value"] is False and on_trace["correct"]["source"] == "human"
    assert on_trace["judge"]["value"] == 2.0 and on_trace["judge"]["author"] == "ana"
    page = client.get(f"/review/{queue_id}").text
    assert "2 / 2" in page and "no window" not in page and '<span class="score-value">poor' in page
    # a scored task shows its scores again, and may be corrected by its reviewer
    again = client.get(first).text
    assert re.search(r'value="2"[^>]*checked', again) and "submitting again replaces" in again


def test_assignment_and_claims_keep_reviewers_apart(
    review_served: RunningGateway, client: httpx.Client
) -> None:
    queue_id = make_queue(client, "assigned")
    store = evals(review_served)
    answer = client.post(
        f"/review/{queue_id}/assign",
        data={"csrf": token(client), "count": "2", "assignee": "bo"},
    )
    assert answer.headers["location"] == f"/review/{queue_id}?assigned=2"
    tasks = store.list_tasks(queue_id)
    assert [t.assignee for t in tasks] == ["bo", "bo", None, None]
    page = client.get(f"/review/{queue_id}?assigned=2").text
    assert "2 task(s) assigned." in page and page.count("<td>bo</td>") == 2
    be(client, "ana")
    assert next_task(client, queue_id).endswith(f"/tasks/{tasks[2].id}")  # not bo's
    # selected tasks go back to no one
    client.post(
        f"/review/{queue_id}/assign",
        data={"csrf": token(client), "task": [str(tasks[0].id), str(tasks[1].id)], "assignee": ""},
    )
    assert [t.assignee for t in store.list_tasks(queue_id)] == [None] * 4
    # a task bo has open is not ana's to score
    store.claim(tasks[3].id, "bo")
    page = client.get(f"/review/{queue_id}/tasks/{tasks[3].id}")
    assert "bo has this task open" in page.text
    answer = client.post(
        f"/review/{queue_id}/tasks/{tasks[3].id}",
        data={"csrf": csrf_of(page.text), "c.correct": "pass", "c.judge": "5"},
    )
    assert answer.status_code == 400 and "bo is reviewing task" in answer.text


def test_export_and_unknown_pages(review_served: RunningGateway, client: httpx.Client) -> None:
    queue_id = make_queue(client, "exported", failed="1")
    store = evals(review_served)
    task = store.next_task(queue_id, "cy")
    store.submit_score(task.id, "cy", {"correct": "pass", "judge": 4}, "fine")
    answer = client.get(f"/review/{queue_id}/export")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/x-ndjson"
    assert 'filename="exported-scores.jsonl"' in answer.headers["content-disposition"]
    (line,) = [orjson.loads(x) for x in answer.text.splitlines()]
    assert line["item"] == {"run_id": review_data.RUN_ID, "item_id": "r2", "repeat": 0}
    assert line["labels"] == {"correct": "pass", "judge": "good"} and line["reviewer"] == "cy"
    assert client.get("/review/rq_nope").status_code == 404
    assert client.get(f"/review/{queue_id}/tasks/999999").status_code == 404
    other = make_queue(client, "other")
    assert client.get(f"/review/{other}/tasks/{task.id}").status_code == 404


def test_a_skipped_task_is_put_back_in_the_queue(
    review_served: RunningGateway, client: httpx.Client
) -> None:
    queue_id = make_queue(client, "skip-and-back", failed="1")
    be(client, "cy")
    first = next_task(client, queue_id)
    csrf = csrf_of(client.get(first).text)
    assert client.post(first, data={"csrf": csrf, "action": "skip"}).status_code == 303
    page = client.get(first).text
    assert "Skipped by cy." in page and 'id="reopen-task"' in page
    assert client.post(first, data={"action": "reopen"}).status_code == 403  # no token
    answer = client.post(first, data={"csrf": csrf, "action": "reopen"})
    assert answer.status_code == 303 and answer.headers["location"] == first
    task_id = int(first.rsplit("/", 1)[1])
    assert evals(review_served).get_task(task_id).status == "pending"
    assert "Skipped by" not in client.get(first).text


def test_a_pairwise_runs_task_shows_the_baseline_answer(
    review_served: RunningGateway, client: httpx.Client
) -> None:
    store = evals(review_served)
    base = store.get_run(review_data.RUN_ID)
    results = store.run_results(base.id)
    scorers = [{"type": "pairwise", "name": "pairwise", "baseline_run": base.id, "config": {}}]
    run = EvalRun("run_pairwise", "refund", base.created_us + 1, "fp", "finished",
                  {**base.record, "scorers": scorers})  # fmt: skip
    store.create_run(run)
    store.write_results(
        [EvalResult(run.id, r.item_id, 0, "ok", text=f"new: {r.text}") for r in results]
    )
    form = {"csrf": token(client), "name": "pairwise-review", "from": "run", "run": run.id}
    answer = client.post("/review", data={**form, **RUBRIC})
    assert answer.status_code == 303, answer.text
    queue_id = answer.headers["location"].split("?")[0].rsplit("/", 1)[1]
    be(client, "di")
    html = client.get(next_task(client, queue_id)).text
    first = results[0]
    assert 'id="baseline-answer"' in html and f"new: {first.text}" in html
    assert f'href="/evals/runs/{base.id}"' in html
