"""`controltower eval run` and `datasets` as CI runs them: real processes, every exit code,
a run killed and resumed, the reports, and the model-upgrade example end to end."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import orjson
import pytest

from controltower.store import open_eval_store

CLI = [sys.executable, "-m", "controltower"]
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "model-upgrade"

CONFIG = """\
models:
  - name: fast
    deployments:
      - provider: mock
        model: fast-1
        mock:
          rules: [{{match: refund, reply: "Refunds within 30 days."}}]
          reply: "No idea."
          {extra}
  - name: judge
    deployments:
      - provider: mock
        model: judge-1
        mock:
          rules: [{{match: '30 days', reply: '{{"reasoning": "ok", "score": 5}}'}}]
          reply: '{{"reasoning": "no", "score": 1}}'
"""


def cli(
    tmp: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the CLI in `tmp` against its SQLite file."""
    full = {**os.environ, "CONTROLTOWER_DATABASE_URL": f"sqlite:///{tmp / 'ct.db'}", **(env or {})}
    full.pop("GITHUB_ACTIONS", None)
    full.update(env or {})
    return subprocess.run(
        [*CLI, *args], cwd=tmp, capture_output=True, text=True, timeout=timeout, env=full
    )


def setup(tmp: Path, *, items: int = 4, extra: str = "ttft_ms: 0", scorers: str = "") -> Path:
    """A config, a dataset and an eval file in `tmp`; the eval file's path."""
    (tmp / "config.yaml").write_text(CONFIG.format(extra=extra))
    lines = [
        orjson.dumps(
            {
                "id": f"i{n:03}",
                "input": f"refund {n}?" if n % 2 else f"ship {n}?",
                "expected": "30 days",
            }
        ).decode()
        for n in range(items)
    ]
    (tmp / "data.jsonl").write_text("\n".join(lines) + ("\n" if lines else ""))
    spec = tmp / "refund.yaml"
    spec.write_text(
        textwrap.dedent(f"""\
        name: refund
        dataset: data.jsonl
        target:
          model: fast
          messages: [{{role: user, content: "{{{{ input }}}}"}}]
        scorers:
          - contains: "{{{{ expected }}}}"
          {scorers or '- judge: {rubric: "Is it right?", scale: 1-5}'}
        concurrency: 2
        """)
    )
    return spec


def test_a_passing_run_exits_0_and_writes_every_report(tmp_path: Path) -> None:
    setup(tmp_path)
    done = cli(
        tmp_path,
        "eval",
        "run",
        "refund.yaml",
        "-c",
        "config.yaml",
        "-q",
        "--junit",
        "out/junit.xml",
        "--markdown",
        "out/pr.md",
        "--json",
        "out/r.json",
    )
    assert done.returncode == 0, done.stderr
    assert "gate: passed (exit 0)" in done.stderr
    report = orjson.loads((tmp_path / "out" / "r.json").read_bytes())
    run = report["runs"][0]
    assert run["summary"]["scorers"]["contains"]["mean"] == 0.5
    record = run["record"]
    assert record["dataset"]["hash"] and record["dataset"]["version"] == 1
    assert record["target"]["resolved"]["deployments"][0]["model"] == "fast-1"
    judge = record["scorers"][1]
    assert judge["judge_model"] == "judge" and len(judge["judge_prompt_hash"]) == 16
    assert record["cache"] == "on"
    suite = ET.parse(tmp_path / "out" / "junit.xml").getroot()[0]
    assert suite.get("failures") == "0" and suite.get("errors") == "0"  # the gate passed
    assert "## Eval `refund`: passed" in (tmp_path / "out" / "pr.md").read_text()


def test_a_missed_threshold_exits_1_with_junit_failures(tmp_path: Path) -> None:
    spec = setup(tmp_path)
    spec.write_text(spec.read_text() + "thresholds: {contains: 0.9}\n")
    done = cli(
        tmp_path,
        "eval",
        "run",
        "refund.yaml",
        "-c",
        "config.yaml",
        "-q",
        "--junit",
        "j.xml",
        env={"GITHUB_ACTIONS": "true"},
    )
    assert done.returncode == 1, done.stderr
    assert "contains scored 0.500, below its threshold 0.9" in done.stderr
    suite = ET.parse(tmp_path / "j.xml").getroot()[0]
    assert int(suite.get("failures") or 0) >= 2  # two failed items and the threshold
    annotation = next(line for line in done.stdout.splitlines() if line.startswith("::error"))
    assert annotation.startswith("::error file=refund.yaml,line=10,title=eval threshold::")
    skipped = cli(
        tmp_path, "eval", "run", "refund.yaml", "-c", "config.yaml", "-q", "--fail-on", "regression"
    )
    assert skipped.returncode == 0, skipped.stderr  # thresholds do not fail this build


def test_an_invalid_eval_file_exits_2_with_every_problem(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        textwrap.dedent("""\
        name: refund
        dataset: data.jsonl
        target: {model: fast, prompt: x}
        scorers:
          - contians: foo
          - regex: "("
        repeats: 0
        """)
    )
    done = cli(tmp_path, "eval", "run", "bad.yaml", "-q")
    assert done.returncode == 2
    assert "bad.yaml:3 target: names prompt, model; fix: give exactly one" in done.stderr
    assert (
        "bad.yaml:5 scorers[0].contians: unknown scorer type; fix: did you mean `contains`?"
        in done.stderr
    )
    assert "bad.yaml:6 scorers[1].regex" in done.stderr
    assert "bad.yaml:7 repeats: must be a whole number from 1 to 100 (got 0)" in done.stderr
    usage = cli(tmp_path, "eval", "run", "bad.yaml", "--fail-on", "everything")
    assert usage.returncode == 2 and "--fail-on" in usage.stderr


def test_a_failing_provider_exits_3(tmp_path: Path) -> None:
    setup(tmp_path, extra="failure: '503'")
    config = (tmp_path / "config.yaml").read_text()
    (tmp_path / "config.yaml").write_text(
        config.replace("  - name: fast\n", "  - name: fast\n    retries: 0\n    cooldown_s: 0\n")
    )
    done = cli(tmp_path, "eval", "run", "refund.yaml", "-c", "config.yaml", "-q")
    assert done.returncode == 3, done.stderr
    assert "over max_error_rate" in done.stderr


def test_an_empty_dataset_exits_4(tmp_path: Path) -> None:
    setup(tmp_path, items=0)
    done = cli(tmp_path, "eval", "run", "refund.yaml", "-c", "config.yaml", "-q")
    assert done.returncode == 4, done.stderr
    assert "no item" in done.stderr


def test_a_killed_run_resumes_where_it_stopped(tmp_path: Path) -> None:
    setup(tmp_path, items=24, extra="ttft_ms: 400")
    env = {**os.environ, "CONTROLTOWER_DATABASE_URL": f"sqlite:///{tmp_path / 'ct.db'}"}
    proc = subprocess.Popen(
        [*CLI, "eval", "run", "refund.yaml", "-c", "config.yaml", "-q"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        run_id, kept = _wait_for_results(tmp_path, at_least=2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert 2 <= kept < 24
    done = cli(
        tmp_path,
        "eval",
        "run",
        "refund.yaml",
        "-c",
        "config.yaml",
        "-q",
        "--resume",
        "--json",
        "r.json",
    )
    assert done.returncode == 0, done.stderr
    run = orjson.loads((tmp_path / "r.json").read_bytes())["runs"][0]
    assert run["id"] == run_id and run["status"] == "finished"
    assert run["summary"]["results"] == 24
    # only what was not finished was called again: two calls (target, judge) per item
    assert run["summary"]["cache"]["misses"] <= 2 * (24 - kept)


def test_a_resume_is_refused_when_the_scorers_changed(tmp_path: Path) -> None:
    spec = setup(tmp_path, items=2)
    store = open_eval_store(f"sqlite:///{tmp_path / 'ct.db'}")
    store.engine.dispose()
    assert cli(tmp_path, "eval", "run", "refund.yaml", "-c", "config.yaml", "-q").returncode == 0
    store = open_eval_store(f"sqlite:///{tmp_path / 'ct.db'}")
    try:
        run = store.list_runs()[0]
        store.finish_run(run.id, "interrupted", run.summary)
    finally:
        store.engine.dispose()
    spec.write_text(spec.read_text().replace('contains: "{{ expected }}"', 'icontains: "30"'))
    done = cli(
        tmp_path, "eval", "run", "refund.yaml", "-c", "config.yaml", "-q", "--resume", run.id
    )
    assert done.returncode == 2
    assert f"run {run.id} cannot be resumed: its scorers changed" in done.stderr


def _wait_for_results(tmp: Path, at_least: int) -> tuple[str, int]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if not (tmp / "ct.db").exists():
            continue
        store = open_eval_store(f"sqlite:///{tmp / 'ct.db'}")
        try:
            runs = store.list_runs()
            found = len(store.run_results(runs[0].id)) if runs else 0
        finally:
            store.engine.dispose()
        if found >= at_least:
            return runs[0].id, found
    raise AssertionError("the run wrote no results in 60 s")


def test_datasets_push_tag_show_export_and_add_from_traces(tmp_path: Path) -> None:
    setup(tmp_path, items=3)
    pushed = cli(tmp_path, "datasets", "push", "refund", "data.jsonl", "--tag", "golden-v3")
    assert pushed.returncode == 0, pushed.stderr
    assert "refund#1 created: 3 items" in pushed.stdout
    again = cli(tmp_path, "datasets", "push", "refund", "data.jsonl")
    assert "refund#1 unchanged" in again.stdout
    listed = cli(tmp_path, "datasets", "list", "--json")
    assert orjson.loads(listed.stdout)[0]["tags"] == ["golden-v3"]
    shown = cli(tmp_path, "datasets", "show", "refund@golden-v3", "--json")
    assert len(orjson.loads(shown.stdout)["items"]) == 3
    exported = cli(tmp_path, "datasets", "export", "refund#1", "--format", "openai-chat")
    first = orjson.loads(exported.stdout.splitlines()[0])
    assert first["messages"][-1] == {"role": "assistant", "content": "30 days"}
    pulled = cli(tmp_path, "datasets", "pull", "refund", "back.jsonl")
    assert pulled.returncode == 0 and len((tmp_path / "back.jsonl").read_text().splitlines()) == 3
    # production traces: the eval's own calls are traces too
    assert cli(tmp_path, "eval", "run", "refund.yaml", "-c", "config.yaml", "-q").returncode == 0
    added = cli(
        tmp_path, "datasets", "add-from-traces", "from-prod", "--model", "fast-1", "--limit", "2"
    )
    assert added.returncode == 0, added.stderr
    assert "from-prod#1 created: 2 new item(s) from 2 trace(s)" in added.stdout
    again = cli(
        tmp_path, "datasets", "add-from-traces", "from-prod", "--model", "fast-1", "--limit", "2"
    )
    assert again.returncode == 0, again.stderr
    assert "from-prod#1 unchanged: 0 new item(s) from 2 trace(s), 2 items in all" in again.stdout
    missing = cli(tmp_path, "datasets", "show", "nope")
    assert missing.returncode == 2 and "no dataset 'nope'" in missing.stderr


def test_the_model_upgrade_example(tmp_path: Path) -> None:
    work = tmp_path / "example"
    shutil.copytree(EXAMPLE, work, ignore=shutil.ignore_patterns("*.db", "*.md"))
    steps = [
        (["prompts", "push", "prompts", "--label", "production"], 0),
        (["prompts", "label", "refund-policy", "1", "candidate"], 0),
        (["eval", "run", "evals/refund.yaml", "-q"], 0),
        (["prompts", "push", "prompts-next", "--label", "candidate"], 0),
        (
            [
                "eval",
                "run",
                "evals/refund.yaml",
                "-q",
                "--baseline",
                "production",
                "--markdown",
                "report.md",
            ],
            1,
        ),
        (["prompts", "push", "prompts-fixed", "--label", "candidate"], 0),
        (["eval", "run", "evals/refund.yaml", "-q", "--baseline", "production"], 0),
        (["prompts", "label", "refund-policy", "3", "production"], 0),
    ]
    for argv, code in steps:
        done = subprocess.run(
            [*CLI, *argv, "-c", "controltower.yaml"],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=120,
            env={
                **os.environ,
                "CONTROLTOWER_DATABASE_URL": f"sqlite:///{work / 'controltower.db'}",
            },
        )
        assert done.returncode == code, (argv, done.stdout, done.stderr)
    report = (work / "report.md").read_text()
    assert "## Eval `refund-policy`: failed" in report
    assert "| contains | 1.000 | 0.500 | -0.500 |" in report and "regressed" in report
    assert "**Items that got worse** (20):" in report


@pytest.mark.parametrize("ref", ["run_nope", "branch:main"])
def test_a_missing_baseline_is_an_infrastructure_error(tmp_path: Path, ref: str) -> None:
    setup(tmp_path, items=2)
    done = cli(tmp_path, "eval", "run", "refund.yaml", "-c", "config.yaml", "-q", "--baseline", ref)
    assert done.returncode == 3
    assert "no eval run 'run_nope'" in done.stderr or "no finished run" in done.stderr
