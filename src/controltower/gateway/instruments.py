"""The gateway's Prometheus instruments (see `controltower.gateway.metrics`): imported on
first use, so that prometheus-client (a tenth of a second to import) is not on start-up."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from controltower.domain import TraceRecord
from controltower.gateway.metrics import MULTIPROC_ENV, UNKNOWN

# seconds: from a cache hit (sub-millisecond) to a long generation
BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
# the trace writer's counters: (metric name, WriterStats field, help)
WRITER_COUNTERS = (
    ("controltower_traces_enqueued", "enqueued", "Traces queued for the store."),
    ("controltower_traces_written", "written", "Traces written to the store."),
    ("controltower_traces_dropped", "dropped", "Traces dropped: the writer's queue was full."),
    ("controltower_trace_write_failures", "failed_writes", "Batches the store failed."),
    (
        "controltower_traces_dead_lettered",
        "dead_lettered",
        "Traces the store refused, set aside in dead_letters with their error.",
    ),
    (
        "controltower_traces_normalized",
        "normalized",
        "Traces with values changed to be storable (NUL, nesting, size, out-of-range numbers).",
    ),
)
LIMIT_CODES = frozenset({"budget_exceeded", "rate_limit_exceeded", "budgets_unavailable"})


class Instruments:
    """The counters, histograms and gauges of one gateway process."""

    def __init__(self, aliases: Iterable[str]) -> None:
        self.aliases = frozenset(aliases)
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        by_model = ("model", "kind")
        self.requests = Counter(
            "controltower_requests",
            "Calls through the gateway, by alias, kind and status.",
            (*by_model, "status"),
            registry=r,
        )
        self.errors = Counter(
            "controltower_errors", "Failed calls, by alias and error code.", ("model", "code"),
            registry=r,
        )  # fmt: skip
        self.rejections = Counter(
            "controltower_limit_rejections",
            "Calls refused by a budget or a rate limit, by alias and code.",
            ("model", "code"),
            registry=r,
        )
        self.latency = Histogram(
            "controltower_request_duration_seconds",
            "Time from a call's arrival to its last byte.",
            by_model,
            buckets=BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "controltower_time_to_first_token_seconds",
            "Time to a stream's first event.",
            ("model",),
            buckets=BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "controltower_tokens", "Tokens billed by providers, by alias and direction.",
            ("model", "direction"), registry=r,
        )  # fmt: skip
        self.cost = Counter(
            "controltower_cost_usd", "USD billed by providers, by alias.", ("model",), registry=r
        )
        self.cache = Counter(
            "controltower_cache_lookups",
            "What the exact cache did, by alias: hit, miss or bypass.",
            ("model", "result"),
            registry=r,
        )
        self.saved = Counter(
            "controltower_cache_saved_usd", "USD cache hits saved, by alias.", ("model",),
            registry=r,
        )  # fmt: skip
        self._writer = {
            field: Counter(name, help_text, registry=r)
            for name, field, help_text in WRITER_COUNTERS
        }
        self.queue_depth = Gauge(
            "controltower_trace_queue_depth",
            "Traces waiting to be written.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self._synced: dict[str, int] = dict.fromkeys(self._writer, 0)
        self._lock = threading.Lock()

    def observe(self, record: TraceRecord) -> None:
        """Count one priced gateway call (in the trace writer's thread)."""
        if not record.gateway_call or not record.spans:
            return
        call = record.spans[0]
        attributes = call.attributes
        alias = attributes.get("model_alias")
        model = alias if alias in self.aliases else UNKNOWN
        kind = "chat" if call.kind == "generation" else "embeddings"
        self.requests.labels(model, kind, call.status).inc()
        if call.end_us is not None:
            self.latency.labels(model, kind).observe((call.end_us - call.start_us) / 1e6)
        if call.ttft_us is not None:
            self.ttft.labels(model).observe(call.ttft_us / 1e6)
        if call.status == "error":
            code = str(attributes.get("error_code") or "error")
            self.errors.labels(model, code).inc()
            if code in LIMIT_CODES:
                self.rejections.labels(model, code).inc()
        cached = attributes.get("cache")
        if isinstance(cached, str):
            self.cache.labels(model, cached.lower()).inc()
            saved = attributes.get("cache_saved_usd")
            if cached == "HIT" and isinstance(saved, int | float) and saved > 0:
                self.saved.labels(model).inc(saved)
        if cached == "HIT":
            return  # billed nothing
        usage = call.usage
        for direction, count in (("input", usage.input_tokens), ("output", usage.output_tokens)):
            if count:
                self.tokens.labels(model, direction).inc(count)
        if call.cost:
            self.cost.labels(model).inc(call.cost)

    def sync_writer(self, stats: Any, queue_depth: int) -> None:
        """Copy the trace writer's counters in (what they grew by since the last copy)."""
        with self._lock:
            for field, counter in self._writer.items():
                value = getattr(stats, field)
                grown = value - self._synced[field]
                if grown > 0:
                    counter.inc(grown)
                    self._synced[field] = value
            self.queue_depth.set(queue_depth)

    def render(self) -> bytes:
        """The exposition text: this process's metrics, or every worker's."""
        if self.multiprocess:
            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
            return bytes(generate_latest(merged))
        return bytes(generate_latest(self.registry))

    def close(self) -> None:
        """This process is ending: its live gauges stop counting (multi-process mode)."""
        if self.multiprocess:
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
