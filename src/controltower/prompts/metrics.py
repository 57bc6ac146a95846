"""What each version of a prompt did in production, as the trace stores report it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ScoreMean:
    """The mean of one score name's numeric values, and how many there were."""

    mean: float
    count: int


@dataclass(frozen=True, slots=True)
class VersionMetrics:
    """What one version of a prompt did in production."""

    version: int
    requests: int = 0
    errors: int = 0
    latency_p50_us: int | None = None
    latency_p95_us: int | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float | None = None
    user_scores: dict[str, ScoreMean] = field(default_factory=dict)

    @property
    def error_rate(self) -> float | None:
        """Errors over requests; None without requests."""
        return self.errors / self.requests if self.requests else None


@dataclass(frozen=True, slots=True)
class MetricsWindow:
    """Which generation spans count: start time from `since_us` (inclusive) to `until_us`."""

    since_us: int | None = None
    until_us: int | None = None
