"""A run's summary: per scorer its mean, passes, errors and threshold; target errors; cost."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any, Protocol

from controltower.domain.evaluation import EvalResult
from controltower.evals.contexts import TraceContexts
from controltower.evals.scoring import Scorer
from controltower.evals.spec import EvalSpec


class _Counts(Protocol):
    retries: int

    @property
    def limit(self) -> Any: ...

    @property
    def contexts(self) -> Any: ...


class _CacheCounts(Protocol):
    hits: int
    misses: int


def scorer_summary(
    name: str, kind: str, results: Sequence[EvalResult], threshold: float | None
) -> dict[str, Any]:
    """One scorer's figures over a run's results (errors are counted, not averaged)."""
    values = [r.scores[name].value for r in results if name in r.scores]
    scored = [v for v in values if v is not None]
    passes = [r.scores[name].passed for r in results if name in r.scores]
    out: dict[str, Any] = {
        "kind": kind,
        "n": len(scored),
        "errors": len(values) - len(scored),
        "mean": statistics.fmean(scored) if scored else None,
        "passed": sum(1 for p in passes if p is True),
        "failed": sum(1 for p in passes if p is False),
    }
    if threshold is not None:
        out["threshold"] = threshold
        out["threshold_met"] = out["mean"] is not None and out["mean"] >= threshold
    return out


def summarize(
    spec: EvalSpec,
    scorers: Sequence[Scorer],
    results: Sequence[EvalResult],
    runner: _Counts,
    cache: _CacheCounts,
) -> dict[str, Any]:
    """The summary stored with a run."""
    ok = [r for r in results if r.status == "ok"]
    per_scorer = {
        s.name: scorer_summary(s.name, s.kind, ok, spec.thresholds.get(s.name)) for s in scorers
    }
    latencies = [r.latency_ms for r in ok if r.latency_ms is not None]
    costs = [r.cost_usd for r in ok if r.cost_usd is not None]
    scored = sum(v["n"] for v in per_scorer.values())
    errors = sum(v["errors"] for v in per_scorer.values())
    return {
        "items": len({r.item_id for r in results}),
        "results": len(results),
        "target_errors": len(results) - len(ok),
        "scorer_errors": errors,
        "error_rate": _rate(len(results) - len(ok) + errors, len(results) + scored + errors),
        "scorers": per_scorer,
        "thresholds_met": all(v.get("threshold_met", True) for v in per_scorer.values()),
        "cost_usd": sum(costs) if costs else None,
        "latency_ms_p50": statistics.median(latencies) if latencies else None,
        "cache": {"hits": cache.hits, "misses": cache.misses},
        "rate_limited": runner.retries,
        "concurrency": {"most": runner.limit.most, "lowest": runner.limit.lowest},
        **_contexts(runner.contexts),
    }


def _contexts(reader: Any) -> dict[str, Any]:
    if not isinstance(reader, TraceContexts):
        return {}
    return {"contexts": {"from_traces": reader.read, "traces_missing": reader.missing}}


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0
