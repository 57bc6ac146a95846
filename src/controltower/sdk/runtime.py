"""The SDK's process-wide configuration and exporter, set by `ct.init()` or the environment.

The SDK's API is module-level functions (`ct.observe`, `ct.flush`…), so the configured
exporter has to live in one module-level slot; it is built on first use, never at import.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from controltower.sdk.exporter import Exporter, ExportStats

log = logging.getLogger("controltower.sdk")

# the same default as `controltower serve` (server/run.py), repeated because importing the
# server would pull the web stack into every application that traces
DEFAULT_DATABASE_URL = "sqlite:///controltower.db"

Mask = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class SdkConfig:
    """Where and how the SDK exports; built by `init()`."""

    url: str | None = None
    api_key: str | None = None
    database_url: str = DEFAULT_DATABASE_URL
    project: str | None = None
    sample_rate: float = 1.0
    mask: Mask | None = None
    environment: str | None = None
    release: str | None = None
    enabled: bool = True
    max_queue: int = 10_000
    flush_interval_s: float = 0.5
    batch_size: int = 256
    max_batch_bytes: int = 4 * 1024 * 1024
    max_field_bytes: int = 1024 * 1024
    timeout_s: float = 10.0
    max_retries: int = 5

    def __post_init__(self) -> None:
        positive = {
            "max_queue": self.max_queue, "batch_size": self.batch_size,
            "flush_interval_s": self.flush_interval_s, "max_batch_bytes": self.max_batch_bytes,
            "max_field_bytes": self.max_field_bytes, "timeout_s": self.timeout_s,
        }  # fmt: skip
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"{name} must be greater than 0, not {value}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, not {self.max_retries}")

    @property
    def embedded(self) -> bool:
        """True when spans go straight into a local store instead of a server."""
        return not self.url


class Runtime:
    """The configuration the hot path reads, and the exporter it feeds."""

    def __init__(self, config: SdkConfig, exporter: Exporter) -> None:
        self.config = config
        self.enabled = config.enabled
        self.sample_rate = config.sample_rate
        self.exporter = exporter
        # a bound method in an attribute: one lookup on the hot path
        self.put: Callable[[Any], bool] = exporter.put


RUNTIME: Runtime | None = None
_lock = threading.Lock()
_first_use = threading.Lock()
_hooks_installed = False


def init(
    url: str | None = None,
    api_key: str | None = None,
    *,
    project: str | None = None,
    sample_rate: float | None = None,
    mask: Mask | None = None,
    environment: str | None = None,
    release: str | None = None,
    enabled: bool = True,
    max_queue: int = 10_000,
    flush_interval_s: float = 0.5,
    batch_size: int = 256,
    database_url: str | None = None,
    **options: Any,
) -> None:
    """Configure tracing; arguments left None come from CONTROLTOWER_* variables.

    With neither a URL nor CONTROLTOWER_URL, spans are written straight into the local
    store the dashboard reads (CONTROLTOWER_DATABASE_URL, else sqlite:///controltower.db).
    Calling it again flushes and replaces the previous configuration.
    """
    env = os.environ
    rate = float(env.get("CONTROLTOWER_SAMPLE_RATE", 1)) if sample_rate is None else sample_rate
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"sample_rate must be between 0 and 1, not {rate}")
    config = SdkConfig(
        url=url or env.get("CONTROLTOWER_URL") or None,
        api_key=api_key or env.get("CONTROLTOWER_API_KEY") or None,
        database_url=database_url or env.get("CONTROLTOWER_DATABASE_URL") or DEFAULT_DATABASE_URL,
        project=project or env.get("CONTROLTOWER_PROJECT") or None,
        sample_rate=rate,
        mask=mask,
        environment=environment or env.get("CONTROLTOWER_ENVIRONMENT") or None,
        release=release or env.get("CONTROLTOWER_RELEASE") or None,
        enabled=enabled,
        max_queue=max_queue,
        flush_interval_s=flush_interval_s,
        batch_size=batch_size,
        **options,
    )
    with _lock:
        _install(config)


def autoinit() -> Runtime:
    """The runtime, configured from the environment on first use without `init()`."""
    with _first_use:
        if RUNTIME is None:
            try:
                init()
            except ValueError:
                log.exception("the CONTROLTOWER_* settings are invalid; tracing is off")
                init(enabled=False, sample_rate=1.0)
    assert RUNTIME is not None
    return RUNTIME


def _install(config: SdkConfig) -> None:
    global RUNTIME, _hooks_installed
    previous = RUNTIME
    exporter = Exporter(config)
    RUNTIME = Runtime(config, exporter)
    if previous is not None:
        previous.enabled = False
        previous.exporter.shutdown(config.timeout_s)
    if config.enabled:
        exporter.start()
    if not _hooks_installed:
        atexit.register(_at_exit)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_after_fork_in_child)
        _hooks_installed = True


def flush(timeout_s: float = 10.0) -> bool:
    """Wait until everything recorded so far is exported; False on timeout."""
    rt = RUNTIME
    return True if rt is None else rt.exporter.flush(timeout_s)


def shutdown(timeout_s: float = 10.0) -> None:
    """Flush, then stop: later spans are not recorded (until `init()` is called again)."""
    rt = RUNTIME
    if rt is not None:
        rt.enabled = False
        rt.exporter.shutdown(timeout_s)


def stats() -> ExportStats:
    """Counters of the exporter: enqueued, exported, dropped, failed, queued."""
    rt = RUNTIME
    return ExportStats() if rt is None else rt.exporter.stats()


def _at_exit() -> None:
    rt = RUNTIME
    if rt is not None:
        rt.exporter.shutdown(rt.config.timeout_s)


def _after_fork_in_child() -> None:
    global _lock, _first_use
    _lock, _first_use = threading.Lock(), threading.Lock()  # another thread may have held them
    rt = RUNTIME
    if rt is not None:
        rt.exporter.after_fork()
