"""Making review queues: items from a run's results or from traces by a filter, rubrics
from files, the export of human scores, and the trace scores they become.

The UI and the CLI both call `create_queue`, so a queue made either way is the same.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

import orjson
import yaml

from controltower.domain.evaluation import EvalResult
from controltower.domain.ids import now_us
from controltower.domain.review import (
    Criterion,
    HumanScore,
    QueueSource,
    ReviewItem,
    ReviewQueue,
    check_queue_name,
    check_rubric,
    rubric_from_json,
)
from controltower.domain.score import Score
from controltower.errors import InvalidRequest
from controltower.evals.from_traces import MAX_TRACES
from controltower.evals.store import EvalStore
from controltower.tracing.params import TRACE_FILTER_PARAMS, trace_filter
from controltower.tracing.query import TraceFilter

DEFAULT_TRACE_LIMIT = 100
_PAGE = 200


class TraceLister(Protocol):
    """Lists stored traces by a filter (`ObservabilityStore.list_traces`)."""

    def list_traces(
        self, limit: int = 50, cursor: str | None = None, where: TraceFilter | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of traces, and the cursor of the next."""
        ...


def new_queue_id() -> str:
    """A queue id: `rq_` and a time-ordered hex string."""
    return f"rq_{now_us():x}{secrets.token_hex(4)}"


def load_rubric(path: Path) -> tuple[Criterion, ...]:
    """The rubric of a YAML file; InvalidRequest names the file and the entry at fault."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"{path}: cannot read the rubric: {exc}", param="rubric") from None
    return parse_rubric(text, str(path))


def parse_rubric(text: str, where: str = "rubric") -> tuple[Criterion, ...]:
    """A rubric from YAML (or JSON) text: `criteria:` and a list, or the list alone."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidRequest(f"{where}: not YAML: {exc}", param="rubric") from None
    return rubric_from_json(data, where)


def failed(result: EvalResult) -> bool:
    """Whether a result failed: the target could not answer, or a scorer failed it."""
    return result.status == "error" or any(v.passed is False for v in result.scores.values())


def items_from_run(
    results: Sequence[EvalResult],
    *,
    failed_only: bool = False,
    sample: int | None = None,
    seed: int = 0,
) -> list[ReviewItem]:
    """A run's results as review items (only the failed ones; a seeded sample of them),
    in item and repeat order."""
    chosen = [r for r in results if failed(r)] if failed_only else list(results)
    chosen.sort(key=lambda r: r.key)
    if sample is not None and sample < len(chosen):
        picked = sorted(random.Random(seed).sample(range(len(chosen)), sample))
        chosen = [chosen[i] for i in picked]
    return [ReviewItem(r.run_id, r.item_id, r.repeat) for r in chosen]


def filter_params(text: str) -> dict[str, str]:
    """The trace filter of `since=7d&model=gpt-4o` (or of a trace list URL), checked."""
    query = urlsplit(text).query if "?" in text else text
    params: dict[str, str] = {}
    for key, value in parse_qsl(query.strip(), keep_blank_values=False):
        if key not in TRACE_FILTER_PARAMS:
            raise InvalidRequest(
                f"{key!r} is not a trace filter; the filters are {', '.join(TRACE_FILTER_PARAMS)}",
                param="traces",
            )
        params[key] = value
    trace_filter(params, now_us())  # InvalidRequest names a value that cannot be read
    return params


def trace_ids(
    reader: TraceLister, params: Mapping[str, str], limit: int = DEFAULT_TRACE_LIMIT
) -> list[str]:
    """The ids of the newest traces that match a filter, at most `limit`."""
    where = trace_filter(params, now_us())
    limit = max(1, min(limit, MAX_TRACES))
    found: list[str] = []
    cursor = None
    while len(found) < limit:
        page, cursor = reader.list_traces(min(_PAGE, limit - len(found)), cursor, where)
        found += [row["id"] for row in page]
        if cursor is None or not page:
            break
    return found[:limit]


def create_queue(
    store: EvalStore,
    traces: TraceLister | None,
    *,
    name: str,
    rubric: Sequence[Criterion],
    source: QueueSource,
    created_by: str | None = None,
) -> tuple[ReviewQueue, int]:
    """Make a queue and its tasks from a run's results or from traces; (queue, tasks).

    A sample without a seed gets a random one, kept in the queue's source, so that the
    same sample can be drawn again. InvalidRequest when nothing is there to review.
    """
    check_queue_name(name)
    criteria = check_rubric(rubric)
    project = "default"
    if source.run_id is not None:
        run = store.get_run(source.run_id)
        project = run.project
        if source.sample is not None and source.seed is None:
            source = QueueSource(
                run.id, source.failed_only, source.sample, secrets.randbelow(2**31)
            )
        items = items_from_run(
            store.run_results(run.id),
            failed_only=source.failed_only,
            sample=source.sample,
            seed=source.seed or 0,
        )
        if not items:
            which = "failed results" if source.failed_only else "results"
            raise InvalidRequest(f"run {run.id} has no {which} to review", param="run")
    else:
        if traces is None:
            raise InvalidRequest("traces cannot be read here", param="traces")
        limit = source.limit or DEFAULT_TRACE_LIMIT
        source = QueueSource(trace_filter=dict(source.trace_filter or {}), limit=limit)
        items = [
            ReviewItem(trace_id=t) for t in trace_ids(traces, source.trace_filter or {}, limit)
        ]
        if not items:
            raise InvalidRequest(f"no trace matches {source.describe()}", param="traces")
        project = (source.trace_filter or {}).get("project") or project
    queue = ReviewQueue(new_queue_id(), name, criteria, source, now_us(), created_by, project)
    store.create_queue(queue)
    return queue, store.add_tasks(queue.id, items)


def export_jsonl(queue: ReviewQueue | None, scores: Iterable[HumanScore]) -> bytes:
    """Human scores as JSON lines, each with the labels of its values."""
    lines = []
    for score in scores:
        record = score.as_json()
        if queue is not None:
            record["queue"] = queue.name
            record["labels"] = {
                name: criterion.label(value)
                for name, value in score.values.items()
                if (criterion := queue.criterion(name)) is not None
            }
        lines.append(orjson.dumps(record))
    return b"".join(line + b"\n" for line in lines)


def trace_scores(queue: ReviewQueue, score: HumanScore, trace_id: str) -> list[Score]:
    """The reviewer's scores as `human` scores of a trace (one per criterion), with ids
    that a second scoring of the task replaces."""
    out = []
    for criterion in queue.rubric:
        value = score.values.get(criterion.name)
        if value is None:
            continue
        out.append(
            Score(
                id=f"review-{score.task_id}-{criterion.name}",
                trace_id=trace_id,
                name=criterion.name,
                value=bool(value) if criterion.binary else value,
                created_us=score.created_us,
                source="human",
                comment=score.comment,
                author=score.reviewer,
                project=queue.project,
            )
        )
    return out
