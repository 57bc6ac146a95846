"""What a reader of stored traces can ask for: filters over traces, sessions and users."""

from __future__ import annotations

from dataclasses import dataclass

from controltower.errors import InvalidRequest


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


@dataclass(slots=True, frozen=True)
class GroupFilter:
    """Conditions on the sessions or users listed: their project and when they were active."""

    project: str | None = None
    since_us: int | None = None
    until_us: int | None = None
    user_id: str | None = None  # sessions of one user
