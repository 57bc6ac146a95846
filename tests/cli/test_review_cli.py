"""`controltower review` and `eval calibrate` from review queues, as real processes on a
SQLite file: make queues from a run and from traces, list them, export the scores people
gave, and calibrate the judge against them (exit 2 while nobody has scored)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from controltower.domain.evaluation import EvalResult, EvalRun, Verdict
from controltower.store import open_eval_store, open_store

CLI = [sys.executable, "-m", "controltower"]
JUDGE = [1, 1, 0, 0, 1, 0, 1, 1, 0, 0]  # the judge's pass/fail of q0..q9
PEOPLE = [1, 0, 0, 0, 1, 0, 1, 1, 1, 0]  # what people said: kappa 0.6 (see test_calibrate)
RUBRIC = """\
criteria:
  - name: correct
    scale: pass-fail
    instructions: Does the answer give the refund window?
  - name: tone
    scale: 1-3
    labels: [rude, flat, warm]
"""


def cli(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONTROLTOWER_DATABASE_URL": f"sqlite:///{tmp / 'ct.db'}"}
    return subprocess.run([*CLI, *args], cwd=tmp, capture_output=True, text=True, env=env)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A database with a judged run of ten items, and a rubric file."""
    store = open_eval_store(f"sqlite:///{tmp_path / 'ct.db'}")
    scorers = [{"type": "closed-qa", "name": "correct", "config": {}, "judge_model": "judge"}]
    run = EvalRun("run_judged", "refund", 1, "fp", "finished", {"scorers": scorers})
    store.create_run(run)
    store.write_results(
        [
            EvalResult(run.id, f"q{i}", 0, "ok", f"a{i}", f"a{i}", scores={"correct": v})
            for i, v in enumerate(Verdict.of_bool(bool(x)) for x in JUDGE)
        ]
    )
    store.engine.dispose()
    (tmp_path / "rubric.yaml").write_text(RUBRIC)
    return tmp_path


def score_everything(tmp: Path, queue: str, reviewer: str = "ana") -> None:
    store = open_eval_store(f"sqlite:///{tmp / 'ct.db'}")
    try:
        while (task := store.next_task(queue, reviewer)) is not None:
            value = PEOPLE[int(task.item.item_id[1:])]
            store.submit_score(task.id, reviewer, {"correct": value, "tone": 3}, "ok")
    finally:
        store.engine.dispose()


def test_make_list_and_export_a_queue_of_a_run(workdir: Path) -> None:
    made = cli(
        workdir,
        "review",
        "create",
        "refunds",
        "--from-run",
        "run_judged",
        "--rubric",
        "rubric.yaml",
    )
    assert made.returncode == 0, made.stderr
    assert "refunds (rq_" in made.stdout and "10 task(s) from run run_judged" in made.stdout
    failed = cli(
        workdir,
        "review",
        "create",
        "failed",
        "--from-run",
        "run_judged",
        "--failed",
        "--sample",
        "2",
        "--seed",
        "3",
        "--rubric",
        "rubric.yaml",
        "--by",
        "lead",
    )
    assert (
        failed.returncode == 0
        and "2 task(s) from run run_judged (failed only, a sample of 2, seed 3)" in failed.stdout
    )
    listed = cli(workdir, "review", "list")
    assert listed.returncode == 0
    assert listed.stdout.index("failed") < listed.stdout.index("refunds")  # newest first
    assert "0/10" in listed.stdout and "0/2" in listed.stdout
    score_everything(workdir, "refunds")
    (row, _) = orjson.loads(cli(workdir, "review", "list", "--json").stdout)[::-1]
    assert (row["name"], row["tasks"], row["done"], row["reviewers"]) == (
        "refunds",
        10,
        10,
        {"ana": 10},
    )
    exported = cli(workdir, "review", "export", "refunds")
    lines = [orjson.loads(line) for line in exported.stdout.splitlines()]
    assert len(lines) == 10 and lines[1]["item"] == {
        "run_id": "run_judged",
        "item_id": "q1",
        "repeat": 0,
    }
    assert lines[1]["scores"] == {"correct": 0.0, "tone": 3.0}
    assert lines[1]["labels"] == {"correct": "fail", "tone": "warm"}
    to_file = cli(workdir, "review", "export", "refunds", "-o", "out/scores.jsonl")
    assert to_file.returncode == 0 and "10 score(s) -> out/scores.jsonl" in to_file.stderr
    assert (workdir / "out" / "scores.jsonl").read_text() == exported.stdout


def test_a_queue_of_traces_by_filter(workdir: Path) -> None:
    from tests.web import data

    traces = open_store(f"sqlite:///{workdir / 'ct.db'}")
    data.seed(traces)
    traces.close()
    made = cli(
        workdir,
        "review",
        "create",
        "alice",
        "--from-traces",
        "user=alice&name=support-agent",
        "--limit",
        "2",
        "--rubric",
        "rubric.yaml",
    )
    assert made.returncode == 0, made.stderr
    assert "2 task(s) from traces (user=alice, name=support-agent, at most 2)" in made.stdout
    none = cli(
        workdir, "review", "create", "x", "--from-traces", "user=nobody", "--rubric", "rubric.yaml"
    )
    assert none.returncode == 2 and "no trace matches" in none.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rubric", "rubric.yaml"], "give --from-run RUN or --from-traces FILTERS"),
        (["--from-run", "run_nope", "--rubric", "rubric.yaml"], "no eval run 'run_nope'"),
        (["--from-run", "run_judged", "--rubric", "missing.yaml"], "missing.yaml: cannot read"),
        (
            ["--from-run", "run_judged", "--rubric", "bad.yaml"],
            "bad.yaml: criteria[0]: criterion 'a'",
        ),
        (
            ["--from-traces", "colour=red", "--rubric", "rubric.yaml"],
            "'colour' is not a trace filter",
        ),
        (
            ["--from-traces", "user=a", "--failed", "--rubric", "rubric.yaml"],
            "--failed and --sample",
        ),
    ],
)
def test_create_refuses_with_a_clear_message(workdir: Path, args: list[str], message: str) -> None:
    (workdir / "bad.yaml").write_text("criteria:\n  - {name: a, scale: 1-20}\n")
    done = cli(workdir, "review", "create", "q", *args)
    assert done.returncode == 2 and message in done.stderr, done.stderr


def test_calibrate_the_judge_against_a_queue(workdir: Path) -> None:
    cli(
        workdir,
        "review",
        "create",
        "refunds",
        "--from-run",
        "run_judged",
        "--rubric",
        "rubric.yaml",
    )
    nobody = cli(workdir, "eval", "calibrate", "run_judged")
    assert nobody.returncode == 2
    assert "no human scores of run run_judged in any review queue" in nobody.stderr
    assert "review create NAME --from-run run_judged" in nobody.stderr
    score_everything(workdir, "refunds")
    table = cli(workdir, "eval", "calibrate", "run_judged", "--json", "figures.json")
    assert table.returncode == 0, table.stderr
    assert "against human review queues" in table.stdout and "0.60" in table.stdout
    assert "(plain)" in table.stdout and "80%" in table.stdout
    assert "criterion 'tone' has no scorer of that name" in table.stderr  # a note, not an error
    (figures,) = orjson.loads((workdir / "figures.json").read_bytes())
    assert figures["scorer"] == "correct" and figures["kappa"] == pytest.approx(0.6)
    assert figures["pairs"] == 10 and figures["kappa_weighting"] == "none"
    printed = cli(workdir, "eval", "calibrate", "run_judged", "--queue", "refunds", "--json")
    assert orjson.loads(printed.stdout)[0]["agreement"] == pytest.approx(0.8)
    paired = cli(workdir, "eval", "calibrate", "run_judged", "--pair", "tone=correct", "--json")
    assert paired.returncode == 0 and "'tone' has no scorer" not in paired.stderr
    unknown = cli(workdir, "eval", "calibrate", "run_judged", "--queue", "nope")
    assert unknown.returncode == 2 and "no review queue 'nope'" in unknown.stderr


def test_assign_tasks_by_count_and_by_id_then_give_them_back(workdir: Path) -> None:
    made = cli(
        workdir, "review", "create", "q", "--from-run", "run_judged", "--rubric", "rubric.yaml"
    )
    assert made.returncode == 0, made.stderr
    first = cli(workdir, "review", "assign", "q", "ana", "--count", "3")
    assert first.returncode == 0 and "3 task(s) assigned to ana" in first.stdout
    more = cli(workdir, "review", "assign", "q", "bo", "--count", "20")
    assert "7 task(s) assigned to bo" in more.stdout  # the ones no one had
    store = open_eval_store(f"sqlite:///{workdir / 'ct.db'}")
    try:
        queue = store.get_queue("q")
        tasks = store.list_tasks(queue.id)
        assert [t.assignee for t in tasks] == ["ana"] * 3 + ["bo"] * 7
        store.submit_score(tasks[0].id, "ana", {"correct": 1, "tone": 2})
        skipped = store.skip(tasks[1].id, "ana")
        assert store.reopen(skipped.id).status == "pending"  # back in the queue
    finally:
        store.engine.dispose()
    back = cli(workdir, "review", "assign", "q", "--unassign", "--task", str(tasks[0].id),
               "--task", str(tasks[2].id))  # fmt: skip
    assert back.returncode == 0 and "1 task(s) assigned to no one" in back.stdout
    assert "1 were not pending" in back.stderr  # the scored one keeps its reviewer
    for args, message in (
        (["q"], "name a REVIEWER"),
        (["q", "ana"], "--task ID or --count N"),
        (["q", "ana", "--unassign", "--count", "1"], "name a REVIEWER"),
    ):
        refused = cli(workdir, "review", "assign", *args)
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr
