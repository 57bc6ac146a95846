"""`controltower.evals.run`: what `controltower eval run` does, from Python.

It runs an eval file (a path, or its content as a mapping), compares each run with the
baseline and returns the gate's verdict as an `EvalReport` instead of an exit code.
Without a `runtime` it opens the one registered under the `controltower.runtimes` entry
point `local` (the in-process gateway), or `remote` with a `gateway_url` (a running
gateway over HTTP): this layer cannot import the gateway, and that seam lets a plugin
run evals elsewhere.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable, Collection, Coroutine, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from controltower import plugins
from controltower.evals.baseline_runs import compare_with_baseline
from controltower.evals.baselines import is_stored_ref
from controltower.evals.eval_report import EvalReport
from controltower.evals.event_loop import run_to_end
from controltower.evals.gate import FAIL_ON, Gate
from controltower.evals.session import EvalRuntime, RunOptions, run_spec
from controltower.evals.spec import (
    MAX_REPEATS,
    CachePolicy,
    EvalSpec,
    load_eval_file,
    parse_eval,
)

EvalSource = str | os.PathLike[str] | Mapping[str, Any]
P = ParamSpec("P")
T = TypeVar("T")


async def arun(
    eval: EvalSource,
    *,
    config: str | os.PathLike[str] | None = None,
    database_url: str | None = None,
    baseline: str | None = None,
    fail_on: Collection[str] = FAIL_ON,
    cache: CachePolicy | bool | None = None,
    repeats: int | None = None,
    concurrency: int | None = None,
    runtime: EvalRuntime | None = None,
    base_dir: str | os.PathLike[str] | None = None,
    gateway_url: str | None = None,
    api_key: str | None = None,
) -> EvalReport:
    """Run an eval file like `controltower eval run` and return its report (`run` is the
    same, blocking). A `runtime` given is left open; one opened here is closed."""
    chosen = _fail_on(fail_on)
    spec = load_spec(eval, base_dir)
    if repeats is not None:
        if isinstance(repeats, bool) or not 1 <= repeats <= MAX_REPEATS:
            raise ValueError(f"repeats: {repeats!r}; use a whole number from 1 to {MAX_REPEATS}")
        spec = replace(spec, repeats=repeats)
    stored = baseline if baseline and is_stored_ref(baseline) else None  # for pairwise judges
    options = RunOptions(cache=_cache(cache), concurrency=concurrency, baseline=stored)
    active = (
        runtime
        if runtime is not None
        else await asyncio.to_thread(_open_runtime, config, database_url, gateway_url, api_key)
    )
    warnings: list[str] = []
    try:
        outcomes = await run_spec(spec, active, options)
        comparisons = [
            await compare_with_baseline(spec, active, o, baseline, options, warnings.append)
            for o in outcomes
        ]
    finally:
        if runtime is None:
            await active.aclose()
    gate = Gate(spec, outcomes, comparisons, chosen)
    return EvalReport(spec, outcomes, comparisons, gate, warnings)


def _blocking(function: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, T]:
    """`function` run to its end on a new event loop, refused inside a running one."""

    @functools.wraps(function)
    def call(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return run_to_end(function(*args, **kwargs))
        raise RuntimeError(
            "controltower.evals.run() cannot run inside an event loop; "
            "use `await controltower.evals.arun(...)` there"
        )

    return call


run = _blocking(arun)
run.__name__ = run.__qualname__ = "run"
run.__doc__ = """Run an eval file like `controltower eval run` and return its report."""


def load_spec(eval: EvalSource, base_dir: str | os.PathLike[str] | None = None) -> EvalSpec:
    """The checked eval of a file path or of a mapping; EvalFileError with every problem."""
    if isinstance(eval, Mapping):
        where = Path(base_dir) if base_dir is not None else None
        data = dict(eval)
        if callable(data.get("target")):  # `target: answer` for `target: {python: answer}`
            data["target"] = {"python": data["target"]}
        return parse_eval(data, "<python>", base_dir=where)
    path = Path(eval)
    if base_dir is not None and not path.is_absolute():
        path = Path(base_dir) / path
    return load_eval_file(path)


def _open_runtime(
    config: str | os.PathLike[str] | None,
    database_url: str | None,
    gateway_url: str | None,
    api_key: str | None,
) -> EvalRuntime:
    where = str(config) if config is not None else None
    runtime: EvalRuntime
    if gateway_url is None:
        runtime = plugins.runtime_opener("local")(where, database_url)
    else:
        opener = plugins.runtime_opener("remote")
        runtime = opener(where, database_url, gateway_url=gateway_url, api_key=api_key)
    return runtime


def _fail_on(fail_on: Collection[str]) -> set[str]:
    chosen = {fail_on} if isinstance(fail_on, str) else set(fail_on)
    unknown = chosen - set(FAIL_ON) - {"none"}
    if unknown:
        raise ValueError(
            f"fail_on: {', '.join(sorted(unknown))}; use regression, threshold, or () for none"
        )
    return chosen - {"none"}


def _cache(cache: CachePolicy | bool | None) -> CachePolicy | None:
    if isinstance(cache, bool):
        return "on" if cache else "off"
    return cache
