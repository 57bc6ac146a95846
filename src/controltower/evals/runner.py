"""Runs the items of one eval run: concurrent, backing off on 429s, saved as they finish.

Each (item, repeat) is one task: the target's answer, then every scorer on it (in
parallel). At most `concurrency` tasks are in flight; a 429 from the gateway (the
target's or a judge's) halves that limit and the task waits and tries again, and each
run of successes raises the limit back by one, up to what the eval file allows.
Results are written to the store in batches while the run goes on, so a run that is
killed keeps what it finished, and is resumed from there.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from controltower.domain.dataset import DatasetItem
from controltower.domain.evaluation import EvalResult, Verdict
from controltower.domain.ids import now_us
from controltower.errors import APIError, RateLimited
from controltower.evals.calls import CachedClient, CallScope, current_scope
from controltower.evals.heap import older_objects_frozen
from controltower.evals.scoring import Sample, Scorer
from controltower.evals.targets import Answer, Target, TargetError, input_text

log = logging.getLogger("controltower.evals")
T = TypeVar("T")

MAX_RATE_LIMIT_RETRIES = 8
BACKOFF_BASE_S = 0.25
BACKOFF_MAX_S = 30.0
FLUSH_EVERY = 200  # results
FLUSH_INTERVAL_S = 0.5


class AdaptiveLimit:
    """A concurrency limit that halves on a rate limit and grows back one step at a time.

    Used on one event loop: a free slot is taken with no wait and no lock (the usual
    case, a few µs cheaper per task than an `asyncio.Condition`); a task that finds none
    waits on a future of its own, woken in order as slots free up.
    """

    def __init__(self, most: int) -> None:
        self.most = most
        self.limit = most
        self.in_flight = 0
        self.lowered = 0  # how often a 429 lowered it
        self.lowest = most
        self._successes = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def acquire(self) -> None:
        """Wait for a free slot under the current limit."""
        while self.in_flight >= self.limit:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                self._wake()  # a slot this task was woken for goes to the next one
                raise
        self.in_flight += 1

    async def release(self, *, ok: bool) -> None:
        """Free a slot; every `limit` successes in a row raise the limit by one."""
        self.in_flight -= 1
        if ok and self.limit < self.most:
            self._successes += 1
            if self._successes >= self.limit:
                self.limit, self._successes = self.limit + 1, 0
        if self._waiters:
            self._wake()

    async def rate_limited(self) -> None:
        """Halve the limit (not below one)."""
        self.limit = max(1, self.limit // 2)
        self.lowest = min(self.lowest, self.limit)
        self._successes = 0
        self.lowered += 1

    def _wake(self) -> None:
        free = self.limit - self.in_flight
        while free > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                free -= 1


@dataclass(slots=True)
class Progress:
    """How far a run is: counts, and each scorer's running mean."""

    total: int
    done: int = 0
    errors: int = 0
    started: float = 0.0
    sums: dict[str, float] | None = None
    counts: dict[str, int] | None = None

    def add(self, result: EvalResult) -> None:
        """Count one finished result."""
        self.done += 1
        if result.status == "error":
            self.errors += 1
        sums, counts = self.sums or {}, self.counts or {}
        for name, verdict in result.scores.items():
            if verdict.value is not None:
                sums[name] = sums.get(name, 0.0) + verdict.value
                counts[name] = counts.get(name, 0) + 1
        self.sums, self.counts = sums, counts

    def means(self) -> dict[str, float]:
        """Each scorer's mean so far."""
        sums, counts = self.sums or {}, self.counts or {}
        return {name: sums[name] / counts[name] for name in sums if counts.get(name)}


ProgressHook = Callable[[Progress], None]


class ItemRunner:
    """Runs tasks of one run against one target and its scorers."""

    def __init__(
        self,
        run_id: str,
        target: Target,
        scorers: Sequence[Scorer],
        client: CachedClient,
        *,
        concurrency: int,
        write: Callable[[list[EvalResult], dict[str, Any]], None],
        on_progress: ProgressHook | None = None,
        contexts: Callable[[Answer], Awaitable[Answer]] | None = None,
        baseline_texts: dict[tuple[str, int], str] | None = None,
    ) -> None:
        self.run_id = run_id
        self.target = target
        self.scorers = list(scorers)
        # scorers that never wait are run in line; the others concurrently, as tasks
        self._in_line = [s for s in self.scorers if not getattr(s, "waits", True)]
        self._waiting = [s for s in self.scorers if getattr(s, "waits", True)]
        self.client = client
        self.limit = AdaptiveLimit(concurrency)
        self._write = write
        self._on_progress = on_progress
        self.contexts = contexts  # reads the passages an answer's trace retrieved
        self.baseline_texts = baseline_texts or {}  # the baseline run's answers (pairwise)
        self._buffer: list[EvalResult] = []
        self.written: list[EvalResult] = []  # every result written so far, in order
        self._last_flush = time.monotonic()
        self.retries = 0

    async def run(self, tasks: Sequence[tuple[DatasetItem, int]]) -> Progress:
        """Run every task; results are written as they finish (and on cancellation)."""
        progress = Progress(len(tasks), started=time.monotonic())
        queue: asyncio.Queue[tuple[DatasetItem, int]] = asyncio.Queue()
        for task in tasks:
            queue.put_nowait(task)
        workers = [
            asyncio.create_task(self._worker(queue, progress))
            for _ in range(min(self.limit.most, len(tasks)))
        ]
        try:
            with older_objects_frozen():
                await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.gather(*workers, return_exceptions=True)
            await self._flush(force=True)
        return progress

    async def _worker(
        self, queue: asyncio.Queue[tuple[DatasetItem, int]], progress: Progress
    ) -> None:
        while not queue.empty():
            item, repeat = queue.get_nowait()
            result = await self._task(item, repeat)
            self._buffer.append(result)
            progress.add(result)
            if self._on_progress is not None:
                self._on_progress(progress)
            if self._flush_due():
                await self._flush()

    def _flush_due(self) -> bool:
        return (
            len(self._buffer) >= FLUSH_EVERY
            or time.monotonic() - self._last_flush >= FLUSH_INTERVAL_S
        )

    async def _task(self, item: DatasetItem, repeat: int) -> EvalResult:
        scope = CallScope(self.run_id, item.id, repeat)
        token = current_scope.set(scope)
        await self.limit.acquire()
        retries = self.retries
        try:
            return await self._answered(item, repeat, scope)
        finally:
            await self.limit.release(ok=self.retries == retries)
            current_scope.reset(token)

    async def _answered(self, item: DatasetItem, repeat: int, scope: CallScope) -> EvalResult:
        try:
            answer = await self._retrying(lambda: self.target.answer(item, repeat))
        except (APIError, TargetError) as exc:
            return self._failed(item, repeat, exc)
        if self.contexts is not None:
            answer = await self.contexts(answer)
        sample = _sample(item, repeat, answer, self._baseline_text(item.id, repeat))
        verdicts = {s.name: await _checked(s, sample) for s in self._in_line}
        if len(self._waiting) == 1:
            verdicts[self._waiting[0].name] = await self._score(self._waiting[0], sample, scope)
        elif self._waiting:
            waited = await asyncio.gather(*(self._score(s, sample, scope) for s in self._waiting))
            verdicts.update(zip((s.name for s in self._waiting), waited, strict=True))
        return EvalResult(
            self.run_id,
            item.id,
            repeat,
            "ok",
            answer.output,
            answer.text,
            trace_id=answer.trace_id,
            latency_ms=answer.latency_ms,
            cost_usd=answer.cost_usd,
            scores={s.name: verdicts[s.name] for s in self.scorers},
            created_us=now_us(),
        )

    async def _score(self, scorer: Scorer, sample: Sample, scope: CallScope) -> Verdict:
        # one list of traces for the whole task
        mine = CallScope(scope.run_id, scope.item_id, scope.repeat, scorer.name, scope.traces)
        token = current_scope.set(mine)
        try:
            verdict = await self._retrying(lambda: scorer.score(sample))
        except APIError as exc:  # the judge's gateway refused, after the retries
            verdict = Verdict.failed(f"{type(exc).__name__}: {exc.message}")
        except Exception as exc:  # a scorer's bug: an error on this item, not the run's end
            verdict = _raised(scorer, exc)
        finally:
            current_scope.reset(token)
        traces = scope.traces.get(scorer.name)
        if traces:
            verdict = verdict.with_details({**verdict.details, "trace_ids": traces})
        return verdict

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        """`call()`, tried again with backoff (and a lower limit) while it is rate limited."""
        for attempt in range(MAX_RATE_LIMIT_RETRIES):
            try:
                return await call()
            except RateLimited as exc:
                self.retries += 1
                await self.limit.rate_limited()
                await asyncio.sleep(_backoff(attempt, exc))
        return await call()

    def _baseline_text(self, item_id: str, repeat: int) -> str | None:
        """The baseline's answer to the same repeat, or to the item's first one."""
        if not self.baseline_texts:
            return None
        found = self.baseline_texts.get((item_id, repeat))
        return found if found is not None else self.baseline_texts.get((item_id, 0))

    def _failed(self, item: DatasetItem, repeat: int, exc: Exception) -> EvalResult:
        message = exc.message if isinstance(exc, APIError) else str(exc)
        return EvalResult(
            self.run_id,
            item.id,
            repeat,
            "error",
            error=f"{type(exc).__name__}: {message}"[:2000],
            created_us=now_us(),
        )

    async def _flush(self, *, force: bool = False) -> None:
        if not (force or self._flush_due()):
            return
        batch, self._buffer = self._buffer, []
        cache = self.client.take_writes()
        self._last_flush = time.monotonic()
        if batch or cache:
            await asyncio.to_thread(self._write, batch, cache)
            self.written += batch


async def _checked(scorer: Scorer, sample: Sample) -> Verdict:
    """A scorer that never waits (so makes no model call, and is never rate limited)."""
    try:
        return await scorer.score(sample)
    except Exception as exc:  # a scorer's bug: an error on this item, not the run's end
        return _raised(scorer, exc)


def _raised(scorer: Scorer, exc: Exception) -> Verdict:
    log.exception("scorer %s failed", scorer.name)
    return Verdict.failed(f"the scorer raised {type(exc).__name__}: {exc}")


def _backoff(attempt: int, exc: RateLimited) -> float:
    if exc.retry_after is not None and exc.retry_after > 0:
        return min(exc.retry_after, BACKOFF_MAX_S)
    # full jitter, so items that were refused together do not come back together
    return random.uniform(0, min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2**attempt))


def _sample(item: DatasetItem, repeat: int, answer: Answer, baseline: str | None) -> Sample:
    return Sample(
        item,
        answer.output,
        answer.text,
        repeat,
        answer.tool_calls,
        answer.latency_ms,
        answer.cost_usd,
        answer.trace_id,
        answer.contexts,
        input_text(item),
        baseline,
    )
