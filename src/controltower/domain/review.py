"""Human review: queues of items scored against a rubric, their tasks, and the scores.

A queue holds tasks, one per item to review: a result of an eval run (run, item, repeat)
or a recorded trace. A reviewer claims the next task (one assigned to them, or to no one),
scores it on every criterion of the queue's rubric, or skips it. A claim lapses after
`CLAIM_TTL_US`, so a task left open in a closed tab goes back to the others.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from controltower.domain.names import check_artifact_name, check_label
from controltower.errors import InvalidRequest

TaskStatus = Literal["pending", "done", "skipped"]
TASK_STATUSES: tuple[TaskStatus, ...] = ("pending", "done", "skipped")

PASS_FAIL = "pass-fail"
PASS, FAIL = 1.0, 0.0  # as a pass/fail scorer's verdict values them
MAX_POINTS = 10  # a scale goes from 1-2 to 1-10 (keys 1-9, and 0 for 10)
MAX_CRITERIA = 20
MAX_INSTRUCTIONS = 4000
MAX_LABEL = 80
MAX_COMMENT = 10_000
MAX_REVIEWER = 64
CLAIM_TTL_US = 30 * 60 * 1_000_000  # an open task is the reviewer's for 30 minutes

_SCALE = re.compile(r"1-([0-9]{1,2})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SCALE_FIX = f'write "{PASS_FAIL}" or "1-N" with N from 2 to {MAX_POINTS} (e.g. "1-5")'


@dataclass(frozen=True, slots=True)
class Criterion:
    """One question of a rubric: pass/fail, or a 1..N scale whose points may have labels.

    Values are 1.0 (pass) and 0.0 (fail), as pass/fail scorers give them, or the point.
    """

    name: str
    scale: str = PASS_FAIL
    labels: tuple[str, ...] = ()
    instructions: str = ""

    def __post_init__(self) -> None:
        check_label(self.name, "criterion name")
        if self.scale != PASS_FAIL and not _points(self.scale):
            raise InvalidRequest(
                f"criterion {self.name!r}: scale {self.scale!r} is not a scale; {_SCALE_FIX}",
                param="scale",
            )
        wanted = 2 if self.binary else self.points
        if self.labels and len(self.labels) != wanted:
            raise InvalidRequest(
                f"criterion {self.name!r}: {len(self.labels)} labels for a scale of {wanted} "
                f"points; give one label per point ({'pass, fail' if self.binary else '1 first'})",
                param="labels",
            )
        for label in self.labels:
            if not label.strip() or len(label) > MAX_LABEL:
                raise InvalidRequest(
                    f"criterion {self.name!r}: a label must be 1-{MAX_LABEL} characters",
                    param="labels",
                )
        if len(self.instructions) > MAX_INSTRUCTIONS:
            raise InvalidRequest(
                f"criterion {self.name!r}: instructions are limited to {MAX_INSTRUCTIONS} "
                "characters",
                param="instructions",
            )

    @property
    def binary(self) -> bool:
        """Whether it is pass/fail."""
        return self.scale == PASS_FAIL

    @property
    def points(self) -> int:
        """N of a 1..N scale (2 for pass/fail)."""
        return 2 if self.binary else _points(self.scale)

    def choices(self) -> list[tuple[float, str]]:
        """(value, label) of each answer, in the order the form shows them."""
        if self.binary:
            names = self.labels or ("pass", "fail")
            return [(PASS, names[0]), (FAIL, names[1])]
        names = self.labels or tuple(str(n) for n in range(1, self.points + 1))
        return [(float(n), names[n - 1]) for n in range(1, self.points + 1)]

    def label(self, value: float) -> str:
        """The label of a value."""
        return dict(self.choices()).get(value, f"{value:g}")

    def check_value(self, value: Any) -> float:
        """The value as stored: pass/fail as 1.0/0.0, a point of the scale as a float."""
        if self.binary:
            found = _pass_fail(value)
            if found is None:
                raise InvalidRequest(
                    f"{self.name}: {value!r} is not pass or fail", param=f"scores.{self.name}"
                )
            return found
        point = _whole(value)
        if point is None or not 1 <= point <= self.points:
            raise InvalidRequest(
                f"{self.name}: {value!r} is not a point of its scale 1-{self.points}",
                param=f"scores.{self.name}",
            )
        return float(point)

    def as_json(self) -> dict[str, Any]:
        """The criterion as a rubric file writes it."""
        out: dict[str, Any] = {"name": self.name, "scale": self.scale}
        if self.labels:
            out["labels"] = list(self.labels)
        if self.instructions:
            out["instructions"] = self.instructions
        return out


def rubric_from_json(data: Any, where: str = "rubric") -> tuple[Criterion, ...]:
    """A rubric from `{criteria: [...]}` or a list of criteria; InvalidRequest names the
    entry and the field at fault."""
    if isinstance(data, Mapping):
        data = data.get("criteria")
    if not isinstance(data, list) or not data:
        raise InvalidRequest(
            f"{where}: give a list of criteria, each with a name and a scale, e.g. "
            "criteria: [{name: correct, scale: pass-fail}]",
            param="rubric",
        )
    criteria = [_criterion(entry, f"{where}: criteria[{i}]") for i, entry in enumerate(data)]
    return check_rubric(criteria)


def check_rubric(criteria: Sequence[Criterion]) -> tuple[Criterion, ...]:
    """The criteria when they make a rubric: 1 to MAX_CRITERIA, with distinct names."""
    if not criteria:
        raise InvalidRequest("a rubric needs at least one criterion", param="rubric")
    if len(criteria) > MAX_CRITERIA:
        raise InvalidRequest(
            f"a rubric has at most {MAX_CRITERIA} criteria, not {len(criteria)}", param="rubric"
        )
    seen: set[str] = set()
    for criterion in criteria:
        if criterion.name in seen:
            raise InvalidRequest(f"criterion {criterion.name!r} is there twice", param="rubric")
        seen.add(criterion.name)
    return tuple(criteria)


def _criterion(entry: Any, where: str) -> Criterion:
    if not isinstance(entry, Mapping):
        raise InvalidRequest(f"{where}: a criterion is a mapping with name and scale")
    unknown = set(entry) - {"name", "scale", "labels", "instructions"}
    if unknown:
        raise InvalidRequest(
            f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}; "
            "a criterion has name, scale, labels and instructions",
            param="rubric",
        )
    name, scale = entry.get("name"), entry.get("scale", PASS_FAIL)
    labels, instructions = entry.get("labels") or [], entry.get("instructions") or ""
    if not isinstance(name, str):
        raise InvalidRequest(f"{where}: name is missing (a word such as `correct`)")
    if isinstance(scale, int):  # `scale: 5` means 1-5
        scale = f"1-{scale}"
    if not isinstance(scale, str):
        raise InvalidRequest(f"{where}: scale: {_SCALE_FIX}")
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise InvalidRequest(f"{where}: labels is a list of texts, one per point")
    if not isinstance(instructions, str):
        raise InvalidRequest(f"{where}: instructions is a text")
    try:
        return Criterion(name, scale.strip(), tuple(labels), instructions.strip())
    except InvalidRequest as exc:
        raise InvalidRequest(f"{where}: {exc.message}", param=exc.param) from None


@dataclass(frozen=True, slots=True)
class QueueSource:
    """Where a queue's items came from: an eval run's results, or traces by a filter.

    `trace_filter` holds the filter as the trace list's query-string parameters (`since`,
    `model`, `status` ...), so the UI and the CLI read it as they read any trace filter.
    """

    run_id: str | None = None
    failed_only: bool = False
    sample: int | None = None  # a random sample of this many results
    seed: int | None = None  # of the sample, so that it can be drawn again
    trace_filter: dict[str, str] | None = None
    limit: int | None = None  # traces read at most

    def __post_init__(self) -> None:
        if (self.run_id is None) == (self.trace_filter is None):
            raise InvalidRequest(
                "a queue's items come from a run or from a trace filter (one of them)",
                param="source",
            )
        if self.sample is not None and self.sample < 1:
            raise InvalidRequest("a sample is 1 result or more", param="sample")
        if self.trace_filter is not None and (self.failed_only or self.sample is not None):
            raise InvalidRequest(
                "failed-only and sample choose among a run's results, not traces",
                param="source",
            )

    @property
    def kind(self) -> Literal["run", "traces"]:
        """`run` or `traces`."""
        return "run" if self.run_id is not None else "traces"

    def describe(self) -> str:
        """One line for people: `run run_1 (failed only, a sample of 20, seed 7)`."""
        if self.run_id is not None:
            notes = ["failed only"] if self.failed_only else []
            if self.sample is not None:
                notes.append(f"a sample of {self.sample}, seed {self.seed}")
            return f"run {self.run_id}" + (f" ({', '.join(notes)})" if notes else "")
        terms = ", ".join(f"{k}={v}" for k, v in (self.trace_filter or {}).items())
        return f"traces ({terms or 'all'}{f', at most {self.limit}' if self.limit else ''})"

    def as_json(self) -> dict[str, Any]:
        """The source as stored."""
        if self.run_id is not None:
            return {
                "run_id": self.run_id,
                "failed_only": self.failed_only,
                "sample": self.sample,
                "seed": self.seed,
            }
        return {"trace_filter": dict(self.trace_filter or {}), "limit": self.limit}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> QueueSource:
        """A source as `as_json` stored it."""
        traces = data.get("trace_filter")
        return cls(
            run_id=data.get("run_id"),
            failed_only=bool(data.get("failed_only")),
            sample=data.get("sample"),
            seed=data.get("seed"),
            trace_filter=None if traces is None else {str(k): str(v) for k, v in traces.items()},
            limit=data.get("limit"),
        )


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """What a task shows: one result of a run (run, item, repeat), or one trace."""

    run_id: str | None = None
    item_id: str | None = None
    repeat: int = 0
    trace_id: str | None = None

    def __post_init__(self) -> None:
        half_run = (self.run_id is None) != (self.item_id is None)
        from_run = self.run_id is not None and self.item_id is not None
        if half_run or from_run == (self.trace_id is not None) or self.repeat < 0:
            raise InvalidRequest(
                "a review item is a run's result (run id, item id, repeat) or a trace id",
                param="item",
            )

    @property
    def key(self) -> str:
        """What an item is unique by within a queue."""
        if self.trace_id is not None:
            return f"trace/{self.trace_id}"
        return f"run/{self.run_id}/{self.item_id}/{self.repeat}"

    def describe(self) -> str:
        """`item r1 #0` or `trace 4bf9…`."""
        if self.trace_id is not None:
            return f"trace {self.trace_id}"
        return f"item {self.item_id} #{self.repeat}"

    def as_json(self) -> dict[str, Any]:
        """The item as an export writes it."""
        if self.trace_id is not None:
            return {"trace_id": self.trace_id}
        return {"run_id": self.run_id, "item_id": self.item_id, "repeat": self.repeat}


@dataclass(frozen=True, slots=True)
class ReviewQueue:
    """A named queue of tasks scored against one rubric."""

    id: str
    name: str
    rubric: tuple[Criterion, ...]
    source: QueueSource
    created_us: int
    created_by: str | None = None
    project: str = "default"

    def __post_init__(self) -> None:
        check_queue_name(self.name)
        check_rubric(self.rubric)

    def criterion(self, name: str) -> Criterion | None:
        """The criterion of that name, or None."""
        return next((c for c in self.rubric if c.name == name), None)


@dataclass(frozen=True, slots=True)
class ReviewTask:
    """One item of a queue: who it is assigned to, who has it open, and what became of it.

    `assignee` is set by assigning; `claimed_by` by opening the task (for CLAIM_TTL_US);
    `reviewer` is who scored or skipped it.
    """

    id: int
    queue_id: str
    position: int
    item: ReviewItem
    status: TaskStatus = "pending"
    assignee: str | None = None
    claimed_by: str | None = None
    claimed_us: int | None = None
    reviewer: str | None = None
    done_us: int | None = None
    created_us: int = 0

    def claimed(self, now_us: int) -> str | None:
        """Who has the task open now, if anyone (a lapsed claim is no one's)."""
        if self.claimed_by is None or self.claimed_us is None:
            return None
        return self.claimed_by if self.claimed_us >= now_us - CLAIM_TTL_US else None


@dataclass(frozen=True, slots=True)
class HumanScore:
    """A reviewer's scores of one task: a value per criterion, and a comment."""

    task_id: int
    queue_id: str
    item: ReviewItem
    reviewer: str
    values: dict[str, float]
    comment: str | None = None
    created_us: int = 0

    def as_json(self) -> dict[str, Any]:
        """The score as `review export` writes it."""
        return {
            "queue_id": self.queue_id,
            "task_id": self.task_id,
            "item": self.item.as_json(),
            "reviewer": self.reviewer,
            "scores": dict(self.values),
            "comment": self.comment,
            "created_us": self.created_us,
        }


@dataclass(frozen=True, slots=True)
class ReviewProgress:
    """How far a queue is: tasks done, skipped and left, and what each reviewer did."""

    total: int
    done: int
    skipped: int
    in_review: int = 0  # left, and open by a reviewer now
    assigned: int = 0  # left, and assigned to someone
    reviewers: dict[str, int] = field(default_factory=dict)  # tasks scored, by reviewer

    @property
    def left(self) -> int:
        """Tasks neither scored nor skipped."""
        return self.total - self.done - self.skipped

    @property
    def percent(self) -> int:
        """Share of the tasks scored or skipped, in whole percent."""
        return 100 if not self.total else (100 * (self.done + self.skipped)) // self.total


def check_queue_name(name: str) -> str:
    """The queue's name when valid (lowercase letters, digits, `-_.`, `/` between parts)."""
    return check_artifact_name(name, "review queue")


def check_reviewer(name: str | None) -> str:
    """The reviewer's name, trimmed, when it is 1-64 printable characters."""
    text = (name or "").strip()
    if not text or len(text) > MAX_REVIEWER or _CONTROL.search(text):
        raise InvalidRequest(
            f"a reviewer's name is 1-{MAX_REVIEWER} printable characters", param="reviewer"
        )
    return text


def check_scores(
    rubric: Sequence[Criterion], values: Mapping[str, Any], comment: str | None = None
) -> tuple[dict[str, float], str | None]:
    """A value for every criterion (and none for others), and the comment; InvalidRequest
    names what is missing or wrong."""
    known = {c.name for c in rubric}
    unknown = sorted(set(values) - known)
    if unknown:
        raise InvalidRequest(
            f"no criterion {', '.join(map(repr, unknown))} in this rubric", param="scores"
        )
    missing = [c.name for c in rubric if values.get(c.name) in (None, "")]
    if missing:
        raise InvalidRequest(
            f"score every criterion; missing: {', '.join(missing)}", param="scores"
        )
    checked = {c.name: c.check_value(values[c.name]) for c in rubric}
    text = (comment or "").strip() or None
    if text is not None and len(text) > MAX_COMMENT:
        raise InvalidRequest(f"a comment is at most {MAX_COMMENT} characters", param="comment")
    return checked, text


def _points(scale: str) -> int:
    found = _SCALE.fullmatch(scale.strip())
    points = int(found.group(1)) if found else 0
    return points if 2 <= points <= MAX_POINTS else 0


def _pass_fail(value: Any) -> float | None:
    if isinstance(value, bool):
        return PASS if value else FAIL
    if isinstance(value, int | float) and value in (0, 1):
        return float(value)
    text = str(value).strip().lower()
    if text in ("pass", "p", "true", "yes", "1", "1.0"):
        return PASS
    if text in ("fail", "f", "false", "no", "0", "0.0"):
        return FAIL
    return None


def _whole(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    text = str(value).strip()
    return int(text) if text.isdigit() and len(text) <= 3 else None
