"""A finished run against its baseline: a stored run, or the same eval run now on another
label or version of its prompt. `controltower eval run` and `controltower.evals.run`
both compare through here."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace

from controltower.evals.baselines import is_stored_ref, stored_baseline
from controltower.evals.compare import RunComparison, compare_runs
from controltower.evals.session import EvalRuntime, RunOptions, RunOutcome, run_spec
from controltower.evals.spec import EvalSpec

Warn = Callable[[str], None]


async def compare_with_baseline(
    spec: EvalSpec,
    runtime: EvalRuntime,
    outcome: RunOutcome,
    ref: str | None,
    options: RunOptions,
    warn: Warn,
) -> RunComparison | None:
    """The comparison of `outcome` with the baseline `ref` names (None without one)."""
    if ref is None:
        return None
    store = runtime.store
    if is_stored_ref(ref):
        run = outcome.run
        found = await asyncio.to_thread(
            stored_baseline, store, ref, run.name, run.record.get("matrix"), run.id
        )
        base = RunOutcome(found, await asyncio.to_thread(store.run_results, found.id))
    else:  # a prompt label or version: run the same eval on it now
        ran = await _baseline_run(spec, runtime, outcome, ref, options, warn)
        if ran is None:
            return None
        base = ran
    return compare_runs(base.run, base.results, outcome.run, outcome.results)


async def _baseline_run(
    spec: EvalSpec,
    runtime: EvalRuntime,
    outcome: RunOutcome,
    ref: str,
    options: RunOptions,
    warn: Warn,
) -> RunOutcome | None:
    target = spec.target
    if target.kind != "prompt" or target.prompt is None:
        warn(f"--baseline {ref}: a label or version needs a prompt target")
        return None
    name = target.prompt.partition("@")[0].partition("#")[0]
    reference = f"{name}{ref}" if ref.startswith("#") else f"{name}@{ref}"
    base_spec = replace(spec, target=replace(target, prompt=reference), matrix={})
    values = outcome.run.record.get("matrix") or {}
    if values:
        base_spec = replace(base_spec, target=base_spec.target_for(values))
    quiet = RunOptions(cache=options.cache, concurrency=options.concurrency)
    return (await run_spec(base_spec, runtime, quiet))[0]
