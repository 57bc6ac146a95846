"""`controltower review`: human review queues from runs or traces, their progress, and the
export of the scores people gave (the scoring itself happens in the UI, at /review)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import orjson

from controltower.cli.common import acting_user, config_option, database_url_option, when
from controltower.cli.datasets import eval_store
from controltower.domain.review import QueueSource, ReviewProgress, ReviewQueue
from controltower.errors import InvalidRequest
from controltower.evals.review import (
    DEFAULT_TRACE_LIMIT,
    create_queue,
    export_jsonl,
    filter_params,
    load_rubric,
)


@click.group()
def review() -> None:
    """Human review queues: make them from runs or traces, follow them, export scores."""


@review.command("create")
@click.argument("name")
@click.option("--from-run", "run_id", help="the results of this eval run")
@click.option("--failed", is_flag=True, help="only the run's failed results")
@click.option("--sample", type=click.IntRange(1, 100_000), help="a random sample of N results")
@click.option("--seed", type=int, help="the sample's seed (default: a random one, kept)")
@click.option(
    "--from-traces",
    "traces",
    metavar="FILTERS",
    help="traces by the trace list's filters, e.g. 'since=7d&model=gpt-4o&status=error' "
    "(or a /traces?... URL of the UI)",
)
@click.option(
    "--limit",
    default=DEFAULT_TRACE_LIMIT,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="traces at most",
)
@click.option(
    "--rubric",
    "rubric_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="YAML: criteria with a name, a scale (pass-fail or 1-N), labels, instructions",
)
@click.option("--by", "author", help="default: $CONTROLTOWER_USER or the login name")
@config_option
@database_url_option
def create(
    name: str,
    run_id: str | None,
    failed: bool,
    sample: int | None,
    seed: int | None,
    traces: str | None,
    limit: int,
    rubric_path: Path,
    author: str | None,
    config: str | None,
    database_url: str | None,
) -> None:
    """Make queue NAME of a run's results (--from-run) or of traces (--from-traces)."""
    from controltower.store import SqlTraceStore

    if (run_id is None) == (traces is None):
        raise click.UsageError("give --from-run RUN or --from-traces FILTERS (one of them)")
    with eval_store(config, database_url) as store:
        rubric = load_rubric(rubric_path)
        if run_id is not None:
            source = QueueSource(run_id=run_id, failed_only=failed, sample=sample, seed=seed)
        else:
            if failed or sample is not None:
                raise InvalidRequest("--failed and --sample choose among a run's results")
            source = QueueSource(trace_filter=filter_params(traces or ""), limit=limit)
        queue, added = create_queue(
            store,
            SqlTraceStore(store.engine),  # type: ignore[attr-defined]  # the SQL store's
            name=name,
            rubric=rubric,
            source=source,
            created_by=acting_user(author),
        )
    click.echo(f"{queue.name} ({queue.id}): {added} task(s) from {queue.source.describe()}")
    click.echo(f"review them at /review/{queue.id} in the UI", err=True)


@review.command("list")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@config_option
@database_url_option
def list_queues(as_json: bool, config: str | None, database_url: str | None) -> None:
    """List the queues, newest first, with their progress."""
    with eval_store(config, database_url) as store:
        found = [(q, store.queue_progress(q.id)) for q in store.list_queues()]
    if as_json:
        click.echo(orjson.dumps([_queue_json(q, p) for q, p in found]).decode())
        return
    if not found:
        click.echo("no review queues yet: make one with `controltower review create`")
        return
    for queue, progress in found:
        click.echo(
            f"{queue.id}  {queue.name:<24} {progress.done + progress.skipped:>5}/"
            f"{progress.total:<5} ({progress.percent:>3}%)  {when(queue.created_us)}  "
            f"{queue.source.describe()}"
        )


@review.command("assign")
@click.argument("queue")
@click.argument("reviewer", required=False)
@click.option("--task", "task_ids", type=int, multiple=True, help="a task by id (repeatable)")
@click.option(
    "--count", type=click.IntRange(1, 100_000), help="the next N pending tasks no one has"
)
@click.option("--unassign", is_flag=True, help="give the tasks back to no one")
@config_option
@database_url_option
def assign(
    queue: str,
    reviewer: str | None,
    task_ids: tuple[int, ...],
    count: int | None,
    unassign: bool,
    config: str | None,
    database_url: str | None,
) -> None:
    """Assign tasks of QUEUE (name or id) to REVIEWER: by --task, or the next --count."""
    if unassign == (reviewer is not None):
        raise click.UsageError("name a REVIEWER, or pass --unassign (one of them)")
    if bool(task_ids) == (count is not None):
        raise click.UsageError("choose the tasks with --task ID or --count N (one of them)")
    with eval_store(config, database_url) as store:
        found = store.get_queue(queue)
        ids = list(task_ids)
        if count is not None:
            ids = _unassigned(store, found.id, count)
        done = store.assign(found.id, ids, reviewer)
    who = reviewer or "no one"
    click.echo(f"{found.name}: {done} task(s) assigned to {who}")
    if done < len(ids):
        click.echo(f"{len(ids) - done} were not pending (scored, skipped or not in it)", err=True)


@review.command("export")
@click.argument("queue")
@click.option(
    "--output",
    "-o",
    "file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="default: standard output",
)
@config_option
@database_url_option
def export(queue: str, file: Path | None, config: str | None, database_url: str | None) -> None:
    """Write the human scores of QUEUE (its name or id) as JSON lines."""
    with eval_store(config, database_url) as store:
        found = store.get_queue(queue)
        scores = store.human_scores(queue_id=found.id)
    data = export_jsonl(found, scores)
    if file is None:
        click.echo(data.decode(), nl=False)
        return
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_bytes(data)
    click.echo(f"{found.name}: {len(scores)} score(s) -> {file}", err=True)


def _unassigned(store: Any, queue_id: str, count: int) -> list[int]:
    """The ids of the first `count` pending tasks assigned to no one, in queue order."""
    ids: list[int] = []
    offset = 0
    while len(ids) < count:
        page = store.list_tasks(queue_id, status="pending", limit=500, offset=offset)
        ids += [t.id for t in page if t.assignee is None]
        if len(page) < 500:
            break
        offset += len(page)
    return ids[:count]


def _queue_json(queue: ReviewQueue, progress: ReviewProgress) -> dict[str, Any]:
    return {
        "id": queue.id,
        "name": queue.name,
        "project": queue.project,
        "created_us": queue.created_us,
        "created_by": queue.created_by,
        "source": queue.source.as_json(),
        "rubric": [c.as_json() for c in queue.rubric],
        "tasks": progress.total,
        "done": progress.done,
        "skipped": progress.skipped,
        "reviewers": progress.reviewers,
    }
