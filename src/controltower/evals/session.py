"""One eval file run end to end: its dataset version, its runs (one per matrix combination),
their gate records, resumption, and each run's summary.

A run's record is what makes its verdict reproducible: the dataset version and hash, the
target as written and as resolved (prompt version, deployments), every scorer's settings
and judge prompt hash, the cache policy and the Git commit of the eval file. Its
fingerprint hashes the part that must not change for a run to be resumed.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from controltower.domain.dataset import DatasetItem, DatasetVersion
from controltower.domain.evaluation import EvalResult, EvalRun, RunStatus
from controltower.domain.ids import now_us
from controltower.errors import ControlTowerError, NotFound
from controltower.evals.baselines import answers_by_item, is_stored_ref, stored_baseline
from controltower.evals.calls import CachedClient, CachePolicy
from controltower.evals.contexts import TraceContexts, TraceFetcher, TraceReader
from controltower.evals.dataset_files import item_from_record, read_items
from controltower.evals.registry import ScorerRegistry
from controltower.evals.runner import ItemRunner, ProgressHook
from controltower.evals.scoring import ModelClient, Scorer, ScorerContext
from controltower.evals.spec import EvalSpec, TargetSpec
from controltower.evals.store import EvalStore
from controltower.evals.summary import summarize
from controltower.evals.targets import HttpCaller, build_target
from controltower.evals.templating import SampleTemplates
from controltower.version import __version__

_FILE_SUFFIXES = (".jsonl", ".csv", ".json", ".ndjson")
_STORED = re.compile(r"(?P<name>[a-z0-9][a-z0-9._/-]*?)(?:@(?P<tag>[a-z0-9._-]+)|#(?P<v>\d+))?")


class ResumeRefused(ControlTowerError):
    """The run to resume was made with another dataset, target, scorers or models."""


@dataclass(slots=True)
class EvalRuntime:
    """What runs need from outside: the gateway client, the store, an HTTP client."""

    client: ModelClient
    store: EvalStore
    http: HttpCaller | None = None
    on_close: list[Callable[[], Awaitable[None] | None]] = field(default_factory=list)
    traces: TraceReader | TraceFetcher | None = None  # where RAG judges read retrieval spans

    async def aclose(self) -> None:
        """Stop what the runtime started (the in-process gateway, its trace writer)."""
        for close in reversed(self.on_close):
            done = close()
            if done is not None:
                await done


@dataclass(slots=True)
class RunOptions:
    """How to run: cache policy, resumption, and a progress hook."""

    cache: CachePolicy | None = None  # None: the eval file's
    resume: str | bool = False  # a run id, or True for the newest unfinished run
    retry_errors: bool = False
    concurrency: int | None = None
    on_progress: ProgressHook | None = None
    on_start: Callable[[EvalRun, int], None] | None = None  # (run, tasks to do)
    baseline: str | None = None  # the run pairwise judges compare with, unless they name one


@dataclass(slots=True)
class RunOutcome:
    """A finished (or interrupted) run: the stored run and its results."""

    run: EvalRun
    results: list[EvalResult]
    resumed: bool = False


@dataclass(frozen=True, slots=True)
class LoadedDataset:
    """A dataset version an eval runs on, and its items."""

    version: DatasetVersion
    items: list[DatasetItem]
    source: str


def load_dataset(spec: EvalSpec, store: EvalStore) -> LoadedDataset:
    """The eval's items: a file (pushed as dataset `files/STEM`), a stored reference, or
    the items written in the eval file (pushed as `inline/NAME`)."""
    if isinstance(spec.dataset, list):
        items = [
            item_from_record(r, f"{spec.source} dataset[{i}]") for i, r in enumerate(spec.dataset)
        ]
        version, _ = store.push_dataset(
            f"inline/{_slug(spec.name)}", items, message=f"from {spec.source}"
        )
        return LoadedDataset(version, items, spec.source)
    ref = spec.dataset
    path = (spec.base_dir / ref) if not Path(ref).is_absolute() else Path(ref)
    if ref.endswith(_FILE_SUFFIXES) or path.is_file():
        items = read_items(path)
        version, _ = store.push_dataset(f"files/{_slug(path.stem)}", items, message=f"from {ref}")
        return LoadedDataset(version, items, ref)
    match = _STORED.fullmatch(ref)
    if match is None:
        raise NotFound(f"{ref!r} is neither a dataset file nor a stored dataset", param="dataset")
    number = match.group("v")
    version = store.dataset_version(
        match.group("name"), tag=match.group("tag"), version=int(number) if number else None
    )
    return LoadedDataset(version, store.dataset_items(version.dataset, version.version), ref)


async def run_spec(
    spec: EvalSpec,
    runtime: EvalRuntime,
    options: RunOptions | None = None,
    registry: ScorerRegistry | None = None,
) -> list[RunOutcome]:
    """Run an eval file: each combination of its matrix is one run."""
    options = options or RunOptions()
    registry = registry or ScorerRegistry.default()
    dataset = await asyncio.to_thread(load_dataset, spec, runtime.store)
    batch = _run_id() if len(spec.combinations()) > 1 else None
    outcomes = []
    for values in spec.combinations():
        outcomes.append(await _run_one(spec, runtime, options, registry, dataset, values, batch))
    return outcomes


async def _run_one(
    spec: EvalSpec,
    runtime: EvalRuntime,
    options: RunOptions,
    registry: ScorerRegistry,
    dataset: LoadedDataset,
    values: dict[str, Any],
    batch: str | None,
) -> RunOutcome:
    target_spec = spec.target_for(values)
    policy = options.cache or spec.cache
    client = CachedClient(runtime.client, runtime.store, policy, spec.name)
    templates = SampleTemplates()
    scorers = spec.build_scorers(ScorerContext(client, templates), registry)
    record = await _record(spec, target_spec, scorers, dataset, values, policy, client)
    baseline = await asyncio.to_thread(
        _pairwise_baseline, spec, runtime.store, scorers, options, values
    )
    for entry, scorer in zip(record["scorers"], scorers, strict=True):
        if baseline is not None and getattr(scorer, "needs_baseline", False):
            entry["baseline_run"] = baseline[0]
    run, resumed = await asyncio.to_thread(
        _start_run, spec, runtime.store, record, values, batch, options
    )
    done = await asyncio.to_thread(runtime.store.run_results, run.id) if resumed else []
    finished = {r.key for r in done if r.status == "ok" or not options.retry_errors}
    tasks = [
        (item, r)
        for item in dataset.items
        for r in range(spec.repeats)
        if (item.id, r) not in finished
    ]
    if options.on_start is not None:
        options.on_start(run, len(tasks))
    tags = [f"eval-run:{run.id}"]
    target = build_target(
        target_spec,
        client,
        templates,
        http=runtime.http,
        timeout_s=spec.timeout_s,
        tags=tags,
        metadata={},
    )
    runner = ItemRunner(
        run.id,
        target,
        scorers,
        client,
        concurrency=options.concurrency or spec.concurrency,
        write=lambda results, cache: _write(runtime.store, results, cache),
        on_progress=options.on_progress,
        contexts=_trace_contexts(runtime, target_spec, scorers),
        baseline_texts=baseline[1] if baseline is not None else None,
    )
    status: RunStatus = "interrupted"
    try:
        await runner.run(tasks)
        status = "finished"
    finally:
        if status == "finished":  # every result was written: no need to read them back
            results = _merged(done, runner.written)
        else:
            results = await asyncio.to_thread(runtime.store.run_results, run.id)
        summary = summarize(spec, scorers, results, runner, client)
        await asyncio.to_thread(runtime.store.finish_run, run.id, status, summary)
    stored = await asyncio.to_thread(runtime.store.get_run, run.id)
    return RunOutcome(stored, results, resumed)


def _pairwise_baseline(
    spec: EvalSpec,
    store: EvalStore,
    scorers: list[Scorer],
    options: RunOptions,
    values: dict[str, Any],
) -> tuple[str, dict[tuple[str, int], str]] | None:
    """The baseline run of the pairwise judges and its answers, or None without one."""
    judges = [s for s in scorers if getattr(s, "needs_baseline", False)]
    if not judges:
        return None
    ref = getattr(judges[0], "baseline", None) or options.baseline
    if ref is None or not is_stored_ref(ref):
        raise NotFound(
            f"{judges[0].name} compares with a baseline run's answers, and none is named; fix: "
            "set baseline: (a run id, last, or branch:NAME) in its settings, or pass "
            "--baseline RUN",
            param="baseline",
        )
    run = stored_baseline(store, ref, spec.name, values)
    return run.id, answers_by_item(store.run_results(run.id))


def _trace_contexts(
    runtime: EvalRuntime, target: TargetSpec, scorers: list[Scorer]
) -> TraceContexts | None:
    """A reader of retrieval spans, when an application answers and a RAG judge grades."""
    reads = any(getattr(scorer, "reads_contexts", False) for scorer in scorers)
    if runtime.traces is None or target.kind not in ("python", "http") or not reads:
        return None
    return TraceContexts(runtime.traces)


def _merged(done: list[EvalResult], written: list[EvalResult]) -> list[EvalResult]:
    """A resumed run's stored results with the ones this run wrote, by item and repeat."""
    by_key = {r.key: r for r in done}
    by_key.update((r.key, r) for r in written)
    return [by_key[key] for key in sorted(by_key)]


def _write(store: EvalStore, results: list[EvalResult], cache: dict[str, Any]) -> None:
    store.write_results(results)
    if cache:
        store.cache_put(cache)


async def _record(
    spec: EvalSpec,
    target: TargetSpec,
    scorers: list[Scorer],
    dataset: LoadedDataset,
    values: dict[str, Any],
    policy: CachePolicy,
    client: ModelClient,
) -> dict[str, Any]:
    judges = []
    for scorer, scorer_spec in zip(scorers, spec.scorers, strict=True):
        entry = scorer_spec.describe()
        model = getattr(scorer, "model", None)
        if isinstance(model, str):
            entry["judge_model"] = model
            entry["judge_prompt_hash"] = getattr(scorer, "prompt_hash", None)
            entry["resolved"] = await _resolved(client, model)
        judges.append(entry)
    described = target.describe()
    if target.kind in ("prompt", "model"):
        described["resolved"] = await _resolved(
            client, f"prompt:{target.prompt}" if target.kind == "prompt" else target.model or ""
        )
        if target.kind == "prompt" and target.model:
            described["resolved_model"] = await _resolved(client, target.model)
    version = dataset.version
    return {
        "eval": {"name": spec.name, "file": spec.source, **_git(spec)},
        "dataset": {
            "name": version.dataset,
            "version": version.version,
            "hash": version.hash,
            "items": version.item_count,
            "source": dataset.source,
        },
        "target": described,
        "matrix": values,
        "scorers": judges,
        "repeats": spec.repeats,
        "thresholds": spec.thresholds,
        "cache": policy,
        "controltower": __version__,
    }


async def _resolved(client: ModelClient, model: str) -> dict[str, Any]:
    try:
        return await client.resolve(model)
    except ControlTowerError as exc:
        return {"error": str(exc)}


def fingerprint(record: dict[str, Any]) -> str:
    """The hash of what a resumed run must share with the run it continues."""
    kept = {key: record.get(key) for key in ("dataset", "target", "matrix", "scorers", "repeats")}
    kept["dataset"] = {k: v for k, v in (kept["dataset"] or {}).items() if k != "source"}
    raw = orjson.dumps(kept, option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.sha256(raw).hexdigest()


def _start_run(
    spec: EvalSpec,
    store: EvalStore,
    record: dict[str, Any],
    values: dict[str, Any],
    batch: str | None,
    options: RunOptions,
) -> tuple[EvalRun, bool]:
    digest = fingerprint(record)
    if options.resume:
        previous = _to_resume(spec, store, values, options.resume)
        if previous is not None:
            _check_same(previous, record, digest)
            store.finish_run(previous.id, "running", previous.summary)
            return previous, True
    run = EvalRun(
        id=_run_id(),
        name=spec.name,
        created_us=now_us(),
        fingerprint=digest,
        record=record,
        params=_params(record, values),
        batch=batch,
        branch=record["eval"].get("branch"),
        commit=record["eval"].get("commit"),
    )
    store.create_run(run)
    return run, False


def _to_resume(
    spec: EvalSpec, store: EvalStore, values: dict[str, Any], resume: str | bool
) -> EvalRun | None:
    if isinstance(resume, str):
        run = store.get_run(resume)
        if run.name != spec.name:
            raise ResumeRefused(f"run {resume} is of eval {run.name!r}, not {spec.name!r}")
        return run
    for run in store.list_runs(name=spec.name, limit=50):
        if run.record.get("matrix") == values and run.status in ("running", "interrupted"):
            return run
        if run.record.get("matrix") == values:
            return None  # the newest run of these values finished: start a new one
    return None


def _check_same(run: EvalRun, record: dict[str, Any], digest: str) -> None:
    if run.fingerprint == digest:
        return
    changed = [
        key
        for key in ("dataset", "target", "matrix", "scorers", "repeats")
        if orjson.dumps(run.record.get(key), option=orjson.OPT_SORT_KEYS)
        != orjson.dumps(record.get(key), option=orjson.OPT_SORT_KEYS)
    ]
    raise ResumeRefused(
        f"run {run.id} cannot be resumed: its {', '.join(changed) or 'settings'} changed since "
        "it started (the dataset version, the target, the scorers, a judge prompt or a "
        "resolved model); start a new run instead"
    )


def _params(record: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    target = record["target"]
    resolved = target.get("resolved") or {}
    dataset = record["dataset"]
    params: dict[str, Any] = {
        "dataset": f"{dataset['name']}#{dataset['version']}",
        "model": target.get("model") or resolved.get("model"),
    }
    if target.get("prompt"):
        version = resolved.get("version")
        params["prompt"] = (
            f"{resolved.get('name', target['prompt'])}#{version}" if version else target["prompt"]
        )
    if target.get("params"):
        params["params"] = target["params"]
    return {**params, **values}


def _git(spec: EvalSpec) -> dict[str, Any]:
    """The Git commit and branch of the eval file, when it is in a repository."""
    if spec.source.startswith("<"):
        return {}
    where = str(Path(spec.source).resolve().parent)
    commit = _git_out(where, "rev-parse", "HEAD")
    if not commit:
        return {}
    dirty = bool(_git_out(where, "status", "--porcelain", "--", str(Path(spec.source).resolve())))
    branch = (
        os.environ.get("GITHUB_HEAD_REF")
        or os.environ.get("GITHUB_REF_NAME")
        or _git_out(where, "rev-parse", "--abbrev-ref", "HEAD")
    )
    return {"commit": commit, "branch": branch or None, "dirty": dirty}


def _git_out(where: str, *argv: str) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", where, *argv], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    return slug[:100] or "dataset"


def _run_id() -> str:
    return f"run_{now_us():x}{secrets.token_hex(4)}"
