"""What the review pages show, built from the stores as plain data for the templates, and
the queue and score forms read back into domain objects."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controltower.domain.evaluation import EvalResult, EvalRun, Verdict
from controltower.domain.review import (
    PASS,
    Criterion,
    HumanScore,
    QueueSource,
    ReviewQueue,
    ReviewTask,
    check_rubric,
)
from controltower.errors import ControlTowerError, InvalidRequest
from controltower.evals.review import DEFAULT_TRACE_LIMIT, filter_params, parse_rubric
from controltower.evals.store import EvalStore
from controltower.store.serialize import us_to_iso
from controltower.tracing import ObservabilityStore
from controltower.web.review_forms import Form, form_value
from controltower.web.transcript import content_text

CRITERIA_ROWS = 4  # rubric rows of the new-queue form (the script adds more)
SCALES = ("pass-fail", "1-3", "1-4", "1-5", "1-7", "1-10")
TASKS_SHOWN = 1000
RECENT_RUNS = 30


def queue_rows(store: EvalStore) -> list[dict[str, Any]]:
    """Each queue with its progress, newest first."""
    return [
        {
            "queue": queue,
            "progress": store.queue_progress(queue.id),
            "run_id": queue.source.run_id,
            "source": queue.source.describe(),
            "created_time": us_to_iso(queue.created_us),
        }
        for queue in store.list_queues()
    ]


def recent_runs(store: EvalStore) -> list[dict[str, Any]]:
    """The newest runs, to pick one from in the new-queue form."""
    return [
        {"id": run.id, "name": run.name, "created_time": us_to_iso(run.created_us)}
        for run in store.list_runs(limit=RECENT_RUNS)
    ]


def queue_view(store: EvalStore, ref: str, now_us: int) -> dict[str, Any]:
    """A queue's page: its rubric, progress and tasks, with the scores given so far."""
    queue = store.get_queue(ref)
    tasks = store.list_tasks(queue.id, limit=TASKS_SHOWN)
    scores = {s.task_id: s for s in store.human_scores(queue_id=queue.id)}
    progress = store.queue_progress(queue.id)
    rows = [_task_row(queue, task, scores.get(task.id), now_us) for task in tasks]
    return {
        "queue": queue,
        "progress": progress,
        "tasks": rows,
        "more": progress.total - len(rows),
        "created_time": us_to_iso(queue.created_us),
    }


def task_view(
    store: EvalStore, traces: ObservabilityStore, queue: ReviewQueue, task: ReviewTask
) -> dict[str, Any]:
    """What the review screen shows of a task's item: input, output, expected answer, the
    judges' scores and reasons, the trace."""
    item = task.item
    if item.trace_id is not None:
        return _trace_item(traces, item.trace_id)
    run = store.get_run(item.run_id or "")
    result = store.run_result(run.id, item.item_id or "", item.repeat)
    expected, item_input, metadata = None, None, {}
    dataset = run.record.get("dataset") or {}
    try:
        found = store.dataset_items(str(dataset.get("name")), int(dataset.get("version") or 0))
    except (ControlTowerError, ValueError):
        found = []
    for candidate in found:
        if candidate.id == item.item_id:
            expected, metadata = candidate.expected, candidate.metadata
            item_input = candidate.input if candidate.input is not None else candidate.variables
    return {
        "kind": "run",
        "run": run,
        "input": _shown(item_input),
        "output": _result_output(result),
        "expected": None if expected is None else _shown(expected),
        "judges": [] if result is None else _verdicts(result.scores),
        "trace_id": None if result is None else result.trace_id,
        "missing": False,
        "error": None if result is None else result.error,
        "metadata": metadata,
        **_baseline(store, run, item.item_id or "", item.repeat),
    }


def _baseline(store: EvalStore, run: EvalRun, item_id: str, repeat: int) -> dict[str, Any]:
    """For a run a pairwise judge graded: the baseline run's answer to the same item (the
    same repeat, else its first), which the judge compared with."""
    runs = [s.get("baseline_run") for s in run.record.get("scorers") or () if isinstance(s, dict)]
    baseline_run = next((r for r in runs if isinstance(r, str) and r), None)
    if baseline_run is None:
        return {}
    found = store.run_result(baseline_run, item_id, repeat) or store.run_result(
        baseline_run, item_id, 0
    )
    return {"baseline_run": baseline_run, "baseline": _result_output(found)}


def criteria_view(queue: ReviewQueue, chosen: Mapping[str, str]) -> list[dict[str, Any]]:
    """The rubric as the score form shows it: each criterion's choices and keys."""
    out = []
    for criterion in queue.rubric:
        choices = []
        for value, label in criterion.choices():
            if criterion.binary:
                code, key = ("pass", "p") if value == PASS else ("fail", "f")
            else:
                code = f"{value:g}"
                key = "0" if value == 10 else code
            choices.append({"value": code, "label": label, "key": key})
        out.append(
            {
                "name": criterion.name,
                "scale": criterion.scale,
                "binary": criterion.binary,
                "instructions": criterion.instructions,
                "choices": choices,
                "chosen": chosen.get(criterion.name, ""),
            }
        )
    return out


def chosen_values(score: HumanScore | None, queue: ReviewQueue) -> dict[str, str]:
    """A score's values as the form's radio values (to show a task scored before)."""
    if score is None:
        return {}
    out = {}
    for criterion in queue.rubric:
        value = score.values.get(criterion.name)
        if value is not None:
            out[criterion.name] = (
                ("pass" if value == PASS else "fail") if criterion.binary else f"{value:g}"
            )
    return out


def score_form(form: Form, queue: ReviewQueue) -> tuple[dict[str, str], str]:
    """The criteria's values and the comment of a posted score form."""
    values = {c.name: form_value(form, f"c.{c.name}") for c in queue.rubric}
    return {k: v for k, v in values.items() if v}, form_value(form, "comment")


def queue_form(form: Form) -> tuple[str, QueueSource, tuple[Criterion, ...]]:
    """The name, source and rubric of a posted new-queue form; InvalidRequest says what is
    missing or wrong."""
    name = form_value(form, "name")
    if not name:
        raise InvalidRequest("give the queue a name", param="name")
    if form_value(form, "from") == "traces":
        limit = _number(form_value(form, "limit"), "limit") or DEFAULT_TRACE_LIMIT
        source = QueueSource(trace_filter=filter_params(form_value(form, "filter")), limit=limit)
    else:
        run_id = form_value(form, "run")
        if not run_id:
            raise InvalidRequest("give the id of the run to review (run_...)", param="run")
        source = QueueSource(
            run_id=run_id,
            failed_only=bool(form_value(form, "failed")),
            sample=_number(form_value(form, "sample"), "sample"),
            seed=_number(form_value(form, "seed"), "seed", low=0),
        )
    return name, source, _rubric_form(form)


def form_echo(form: Form) -> dict[str, Any]:
    """The new-queue form's values as typed, to show it again after an error."""
    echo: dict[str, Any] = {key: values[-1] for key, values in form.items() if key != "csrf"}
    rows = max([CRITERIA_ROWS, *(_row_of(key) + 1 for key in form)])
    echo["rows"] = rows
    return echo


def _rubric_form(form: Form) -> tuple[Criterion, ...]:
    text = form_value(form, "rubric_yaml")
    if text:
        return parse_rubric(text, "the rubric")
    criteria = []
    for row in range(max((_row_of(key) + 1 for key in form), default=0)):
        name = form_value(form, f"c{row}.name")
        if not name:
            continue
        labels = [x.strip() for x in form_value(form, f"c{row}.labels").split(",") if x.strip()]
        scale = form_value(form, f"c{row}.scale", "pass-fail")
        instructions = form_value(form, f"c{row}.instructions")
        criteria.append(Criterion(name, scale, tuple(labels), instructions))
    if not criteria:
        raise InvalidRequest("the rubric needs a criterion: give it a name", param="rubric")
    return check_rubric(criteria)


def _row_of(key: str) -> int:
    head = key.partition(".")[0]
    return int(head[1:]) if head[:1] == "c" and head[1:].isdigit() and len(head) < 5 else -1


def _number(text: str, param: str, low: int = 1) -> int | None:
    if not text:
        return None
    if not text.isdigit() or int(text) < low or len(text) > 9:
        raise InvalidRequest(f"{param} must be a whole number of {low} or more", param=param)
    return int(text)


def _task_row(
    queue: ReviewQueue, task: ReviewTask, score: HumanScore | None, now_us: int
) -> dict[str, Any]:
    shown = []
    if score is not None:
        for criterion in queue.rubric:
            value = score.values.get(criterion.name)
            if value is not None:
                shown.append({"name": criterion.name, "label": criterion.label(value)})
    return {
        "task": task,
        "item": task.item.describe(),
        "trace_id": task.item.trace_id,
        "open_by": task.claimed(now_us) if task.status == "pending" else None,
        "scores": shown,
        "done_time": us_to_iso(task.done_us) if task.done_us else None,
    }


def _trace_item(traces: ObservabilityStore, trace_id: str) -> dict[str, Any]:
    trace = traces.get_trace(trace_id, span_io=False) or {}
    judges = [
        {
            "name": s.get("name"),
            "value": s.get("value"),
            "passed": None,
            "reason": s.get("comment"),
            "error": None,
            "model": s.get("source"),
        }
        for s in trace.get("scores") or ()
        if not str(s.get("id", "")).startswith("review-")  # not this review's own
    ]
    return {
        "kind": "trace",
        "run": None,
        "input": _shown(trace.get("input")),
        "output": _shown(trace.get("output")),
        "expected": None,
        "judges": judges,
        "trace_id": trace_id if trace else None,
        "missing": not trace,
        "error": None,
        "metadata": trace.get("metadata") or {},
    }


def _result_output(result: EvalResult | None) -> dict[str, Any]:
    if result is None:
        return _shown("(this result is no longer in the run)")
    if result.text or result.output is None:
        return _shown(result.text)
    return _shown(result.output)


def _verdicts(scores: Mapping[str, Verdict]) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "value": verdict.value,
            "passed": verdict.passed,
            "reason": verdict.reason,
            "error": verdict.error,
            "model": verdict.judge_model,
        }
        for name, verdict in scores.items()
    ]


def _shown(value: Any) -> dict[str, Any]:
    """A value as the page shows it: chat messages as bubbles, anything else as text."""
    if isinstance(value, Mapping) and isinstance(value.get("messages"), list):
        value = value["messages"]
    if isinstance(value, list) and value and all(_message(m) for m in value):
        bubbles = [{"role": m["role"], "text": content_text(m.get("content"))} for m in value]
        return {"messages": bubbles, "text": None}
    if isinstance(value, str):
        return {"messages": None, "text": value}
    return {"messages": None, "text": None if value is None else content_text(value)}


def _message(value: Any) -> bool:
    return isinstance(value, Mapping) and isinstance(value.get("role"), str)


def result_trace(store: EvalStore, item: Any) -> str | None:
    """The trace of the run's answer to a run item, if it was traced."""
    if item.run_id is None:
        return None
    result = store.run_result(item.run_id, item.item_id, item.repeat)
    return None if result is None else result.trace_id
