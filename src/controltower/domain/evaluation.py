"""Eval runs: what was run (the gate record), and each item's answer and verdicts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

RunStatus = Literal["running", "finished", "interrupted", "failed"]
ResultStatus = Literal["ok", "error"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """A scorer's answer for one sample.

    `value` is the number the runs are compared on: 1.0 / 0.0 for a pass or a fail, or a
    score (a judge's 1-5, a similarity in 0..1). `passed` is set by binary scorers and by
    numeric ones that have a threshold. An `error` means the sample could not be scored
    (a judge reply that could not be parsed, a scorer that raised): it is neither a pass
    nor a zero, and is left out of the statistics and counted apart.
    """

    value: float | None
    passed: bool | None = None
    reason: str | None = None
    error: str | None = None
    judge_model: str | None = None
    judge_prompt_hash: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of_bool(cls, ok: bool, reason: str | None = None) -> Verdict:
        """A pass (1.0) or a fail (0.0)."""
        return cls(1.0 if ok else 0.0, ok, reason)

    @classmethod
    def failed(cls, error: str) -> Verdict:
        """The sample could not be scored."""
        return cls(None, None, error=error)

    def with_details(self, details: dict[str, Any]) -> Verdict:
        """The same verdict with other details (`dataclasses.replace` costs 5x more)."""
        return Verdict(
            self.value,
            self.passed,
            self.reason,
            self.error,
            self.judge_model,
            self.judge_prompt_hash,
            details,
        )

    def as_json(self) -> dict[str, Any]:
        """The verdict as stored (fields that are empty are left out)."""
        out: dict[str, Any] = {"value": self.value}
        for key in ("passed", "reason", "error", "judge_model", "judge_prompt_hash"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.details:
            out["details"] = self.details
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Verdict:
        """A verdict as `as_json` stored it."""
        value = data.get("value")
        return cls(
            None if value is None else float(value),
            data.get("passed"),
            data.get("reason"),
            data.get("error"),
            data.get("judge_model"),
            data.get("judge_prompt_hash"),
            dict(data.get("details") or {}),
        )


@dataclass(slots=True)
class EvalResult:
    """One item's answer (one repeat of it) in a run, and every scorer's verdict on it.

    `status` is "error" when the target could not answer (after retries): such a result
    has no verdicts, and `--retry-errors` runs it again.
    """

    run_id: str
    item_id: str
    repeat: int
    status: ResultStatus
    output: Any = None
    text: str = ""
    error: str | None = None
    trace_id: str | None = None
    latency_ms: float | None = None
    cost_usd: float | None = None
    scores: dict[str, Verdict] = field(default_factory=dict)
    created_us: int = 0

    @property
    def key(self) -> tuple[str, int]:
        """(item id, repeat): what a result is unique by within its run."""
        return self.item_id, self.repeat


@dataclass(slots=True)
class EvalRun:
    """One run of an eval file: the reproducible record of what was run, and its summary.

    `fingerprint` hashes what must not change for the run to be resumed (the dataset
    version, the target, the scorers, the judge prompts, the resolved models). `record`
    is the gate record (dataset version and hash, prompt version, resolved model and
    deployment, judge models and prompt hashes, scorer settings, cache policy, the Git
    commit of the eval file); `params` are the run's parameters as the runs list shows
    them (prompt version, model, model parameters, dataset version, matrix values).
    """

    id: str
    name: str
    created_us: int
    fingerprint: str
    status: RunStatus = "running"
    record: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    finished_us: int | None = None
    project: str = "default"
    batch: str | None = None  # the runs of one matrix share it
    branch: str | None = None
    commit: str | None = None
