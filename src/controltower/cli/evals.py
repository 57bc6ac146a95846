"""`controltower eval`: run eval files as CI gates, compare runs, list and show them.

Exit codes of `eval run` and `eval compare`: 0 passed, 1 a regression or a missed
threshold, 2 an invalid file or usage, 3 an infrastructure error, 4 an empty run.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import orjson

from controltower.cli.common import config_option, database_url_option, fail, load
from controltower.cli.datasets import open_eval_store
from controltower.cli.eval_view import EvalProgress, print_comparison, print_outcome, runs_table
from controltower.errors import ControlTowerError
from controltower.evals.baseline_runs import compare_with_baseline
from controltower.evals.baselines import is_stored_ref
from controltower.evals.compare import RunComparison, compare_runs
from controltower.evals.event_loop import run_to_end
from controltower.evals.gate import FAIL_ON, INFRASTRUCTURE, USAGE, Gate
from controltower.evals.reports import github_annotations, json_report, junit_xml, markdown
from controltower.evals.session import (
    EvalRuntime,
    ResumeRefused,
    RunOptions,
    RunOutcome,
    run_spec,
)
from controltower.evals.spec import EvalFileError, EvalSpec, load_eval_file


@click.group("eval")
def eval_group() -> None:
    """Evaluate prompts and models on datasets; gate CI on regressions."""


def _fail_on(value: str) -> set[str]:
    chosen = {v.strip() for v in value.split(",") if v.strip()}
    unknown = chosen - set(FAIL_ON) - {"none"}
    if unknown:
        raise click.BadParameter(f"{', '.join(sorted(unknown))}: use regression, threshold or none")
    return chosen - {"none"}


@eval_group.command("run")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--baseline", help="a run id, `last`, `branch:NAME`, or a prompt label/#version")
@click.option(
    "--fail-on",
    default="regression,threshold",
    show_default=True,
    help="what fails the build: regression, threshold (comma-separated), or none",
)
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), help="JUnit XML file")
@click.option(
    "--markdown",
    "markdown_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="a Markdown PR comment",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="the full JSON report",
)
@click.option("--no-cache", is_flag=True, help="call every model again, cache nothing")
@click.option(
    "--cache",
    "cache_mode",
    type=click.Choice(["on", "off", "read-only"]),
    help="default: the eval file's (on)",
)
@click.option(
    "--resume",
    "resume",
    is_flag=False,
    flag_value="last",
    default=None,
    help="continue the newest unfinished run (or the run id given)",
)
@click.option("--retry-errors", is_flag=True, help="when resuming, run errored items again")
@click.option("--concurrency", type=click.IntRange(1, 1024), help="override the file's")
@click.option("--trace-url", help="the UI's address, for trace links in the Markdown")
@click.option("--quiet", "-q", is_flag=True, help="no progress bar")
@click.option(
    "--gateway-url",
    help="call models through the controltower gateway at this URL (default: in process)",
)
@click.option(
    "--api-key",
    envvar="CONTROLTOWER_API_KEY",
    show_envvar=True,
    help="the key of the gateway at --gateway-url",
)
@config_option
@database_url_option
def run_command(
    file: Path,
    baseline: str | None,
    fail_on: str,
    junit: Path | None,
    markdown_path: Path | None,
    json_path: Path | None,
    no_cache: bool,
    cache_mode: str | None,
    resume: str | None,
    retry_errors: bool,
    concurrency: int | None,
    trace_url: str | None,
    quiet: bool,
    gateway_url: str | None,
    api_key: str | None,
    config: str | None,
    database_url: str | None,
) -> None:
    """Run the eval FILE, compare it with a baseline, and exit with the gate's code."""
    try:
        chosen = _fail_on(fail_on)
    except click.BadParameter as exc:
        click.echo(f"error: --fail-on: {exc.message}", err=True)
        sys.exit(USAGE)
    spec = _load_spec(file)
    options = RunOptions(
        cache="off" if no_cache else cache_mode,  # type: ignore[arg-type]
        resume=True if resume == "last" else (resume or False),
        retry_errors=retry_errors,
        concurrency=concurrency,
        # a stored baseline is also what pairwise judges that name none compare with
        baseline=baseline if baseline and is_stored_ref(baseline) else None,
    )
    runtime = _runtime(config, database_url, gateway_url, api_key)
    try:
        outcomes, comparisons = run_to_end(
            _run_and_compare(spec, runtime, options, baseline, quiet)
        )
    except ResumeRefused as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(USAGE)
    except ControlTowerError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(INFRASTRUCTURE)
    gate = Gate(spec, outcomes, comparisons, chosen)
    _report(gate, junit, markdown_path, json_path, trace_url)
    sys.exit(gate.exit_code)


def _load_spec(file: Path) -> EvalSpec:
    try:
        return load_eval_file(file)
    except EvalFileError as exc:
        fail(exc)


def _runtime(
    config: str | None, database_url: str | None, gateway_url: str | None, api_key: str | None
) -> EvalRuntime:
    from controltower.cli.common import open_trace_store
    from controltower.gateway.local import local_runtime

    if gateway_url is not None:
        return _remote_runtime(config, database_url, gateway_url, api_key)
    settings = load(config)
    store = open_trace_store(config, database_url, must_exist=False)
    runtime = local_runtime(settings, store)
    runtime.on_close.append(store.close)
    return runtime


def _remote_runtime(
    config: str | None, database_url: str | None, gateway_url: str, api_key: str | None
) -> EvalRuntime:
    """Model calls to a running gateway; the runs kept in this command's database."""
    from controltower.gateway.remote import gateway_base, remote_runtime

    try:
        url = gateway_base(gateway_url)
    except ControlTowerError as exc:
        fail(exc)
    store = open_eval_store(config, database_url, must_exist=False)
    click.echo(f"gateway: {url}", err=True)
    runtime = remote_runtime(url, api_key, store)
    runtime.on_close.append(store.engine.dispose)
    return runtime


async def _run_and_compare(
    spec: EvalSpec, runtime: EvalRuntime, options: RunOptions, baseline: str | None, quiet: bool
) -> tuple[list[RunOutcome], list[RunComparison | None]]:
    progress = None if quiet else EvalProgress(spec)
    if progress is not None:
        options.on_start, options.on_progress = progress.start, progress.update
    try:
        with progress if progress is not None else contextlib.nullcontext():
            outcomes = await run_spec(spec, runtime, options)
            comparisons = [
                await compare_with_baseline(spec, runtime, outcome, baseline, options, _warn)
                for outcome in outcomes
            ]
    finally:
        await runtime.aclose()
    for outcome, comparison in zip(outcomes, comparisons, strict=True):
        print_outcome(outcome, spec)
        if comparison is not None:
            print_comparison(comparison)
    return outcomes, comparisons


def _warn(message: str) -> None:
    click.secho(f"warning: {message}", fg="yellow", err=True)


def _report(
    gate: Gate,
    junit: Path | None,
    markdown_path: Path | None,
    json_path: Path | None,
    trace_url: str | None,
) -> None:
    writers: list[tuple[Path | None, Callable[[], bytes]]] = [
        (junit, lambda: junit_xml(gate)),
        (markdown_path, lambda: markdown(gate, trace_url).encode()),
        (json_path, lambda: json_report(gate)),
    ]
    for path, data in writers:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data())
    if os.environ.get("GITHUB_ACTIONS") == "true":
        for line in github_annotations(gate, _dataset_lines(gate.spec)):
            click.echo(line)
    for problem in gate.failures():
        click.secho(f"{problem.kind}: {problem.message}", fg="red", err=True)
    verdict = {0: "passed", 1: "failed", 3: "infrastructure error", 4: "empty run"}
    click.echo(f"gate: {verdict.get(gate.exit_code, 'failed')} (exit {gate.exit_code})", err=True)


def _dataset_lines(spec: EvalSpec) -> dict[str, int]:
    """Item id -> the line of the dataset file it starts on (what annotations point at)."""
    if not isinstance(spec.dataset, str):
        return {}
    from controltower.evals.dataset_files import read_dataset

    path = spec.base_dir / spec.dataset
    if not path.is_file():
        return {}
    try:
        read = read_dataset(path)
    except (OSError, ControlTowerError, ValueError):
        return {}
    return {item.id: line for item, line in zip(read.items, read.lines, strict=False)}


@eval_group.command("compare")
@click.argument("baseline")
@click.argument("candidate")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@config_option
@database_url_option
def compare_command(
    baseline: str, candidate: str, as_json: bool, config: str | None, database_url: str | None
) -> None:
    """Compare run CANDIDATE with run BASELINE; exit 1 when a scorer regressed."""
    store = open_eval_store(config, database_url, must_exist=True)
    try:
        base, cand = store.get_run(baseline), store.get_run(candidate)
        comparison = compare_runs(
            base, store.run_results(base.id), cand, store.run_results(cand.id)
        )
    except ControlTowerError as exc:
        fail(exc)
    finally:
        store.engine.dispose()
    if as_json:
        click.echo(orjson.dumps(comparison.as_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        print_comparison(comparison)
    sys.exit(1 if comparison.regressions else 0)


@eval_group.command("list")
@click.option("--name", help="runs of one eval")
@click.option("--branch", help="runs on one Git branch")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@config_option
@database_url_option
def list_command(
    name: str | None,
    branch: str | None,
    limit: int,
    as_json: bool,
    config: str | None,
    database_url: str | None,
) -> None:
    """List runs, newest first, with their parameters and scores."""
    store = open_eval_store(config, database_url, must_exist=True)
    try:
        runs = store.list_runs(name=name, branch=branch, limit=limit)
    finally:
        store.engine.dispose()
    if as_json:
        click.echo(orjson.dumps([_run_json(r) for r in runs]).decode())
        return
    runs_table(runs)


@eval_group.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="print the run and its results as JSON")
@config_option
@database_url_option
def show_command(run_id: str, as_json: bool, config: str | None, database_url: str | None) -> None:
    """Show a run: its record, its summary, and its failed items."""
    store = open_eval_store(config, database_url, must_exist=True)
    try:
        run = store.get_run(run_id)
        results = store.run_results(run_id)
    except ControlTowerError as exc:
        fail(exc)
    finally:
        store.engine.dispose()
    if as_json:
        body = {**_run_json(run), "results": [_result_json(r) for r in results]}
        click.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2, default=str).decode())
        return
    print_outcome(RunOutcome(run, results), None, record=True)


def _run_json(run: Any) -> dict[str, Any]:
    return {
        "id": run.id,
        "name": run.name,
        "status": run.status,
        "created_us": run.created_us,
        "finished_us": run.finished_us,
        "branch": run.branch,
        "commit": run.commit,
        "params": run.params,
        "summary": run.summary,
        "record": run.record,
    }


def _result_json(result: Any) -> dict[str, Any]:
    return {
        "item": result.item_id,
        "repeat": result.repeat,
        "status": result.status,
        "text": result.text,
        "error": result.error,
        "trace_id": result.trace_id,
        "latency_ms": result.latency_ms,
        "scores": {n: v.as_json() for n, v in result.scores.items()},
    }
