"""What a reader of stored traces can ask for: filters over traces, sessions and users."""

from __future__ import annotations

import math
from dataclasses import dataclass

from controltower.domain.trace import INT64_MAX
from controltower.errors import InvalidRequest

# tags and metadata entries one filter may hold: each is a condition of the query, and
# SQLite refuses queries past a depth of 1,000 conditions
MAX_FILTER_TERMS = 50


@dataclass(slots=True, frozen=True)
class TraceFilter:
    """Conditions a trace must meet; every field left None (or empty) matches all."""

    project: str | None = None
    since_us: int | None = None  # start at or after
    until_us: int | None = None  # start before
    name: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    model: str | None = None  # the model of any of its generation spans
    status: str | None = None
    tags: tuple[str, ...] = ()  # all of them
    # metadata keys it must have, with the value it must hold (None: any value)
    metadata: tuple[tuple[str, str | None], ...] = ()
    min_cost: float | None = None
    min_latency_ms: float | None = None
    text: str | None = None  # a substring of its input or output, any case

    def __post_init__(self) -> None:
        for key, _ in self.metadata:
            if not key:
                raise InvalidRequest(
                    "a metadata filter needs a key, as key or key=value", param="metadata"
                )
        for param, terms in (("tags", self.tags), ("metadata", self.metadata)):
            if len(terms) > MAX_FILTER_TERMS:
                raise InvalidRequest(
                    f"{param} holds {len(terms)} entries; a filter takes at most "
                    f"{MAX_FILTER_TERMS}",
                    param=param,
                )
        _check_times(self.since_us, self.until_us)
        for param, number in (("min_cost", self.min_cost), ("min_latency", self.min_latency_ms)):
            if number is not None and not (math.isfinite(number) and number >= 0):
                raise InvalidRequest(f"{param} must be a finite number of 0 or more", param=param)
        # compared in µs with a 64-bit column
        if self.min_latency_ms is not None and self.min_latency_ms * 1000 > INT64_MAX:
            raise InvalidRequest("min_latency is too large", param="min_latency")


@dataclass(slots=True, frozen=True)
class GroupFilter:
    """Conditions on the sessions or users listed: their project and when they were active."""

    project: str | None = None
    since_us: int | None = None
    until_us: int | None = None
    user_id: str | None = None  # sessions of one user

    def __post_init__(self) -> None:
        _check_times(self.since_us, self.until_us)


def _check_times(since_us: int | None, until_us: int | None) -> None:
    for param, value in (("since", since_us), ("until", until_us)):
        if value is not None and not -INT64_MAX - 1 <= value <= INT64_MAX:
            raise InvalidRequest(f"{param} is out of range", param=param)
