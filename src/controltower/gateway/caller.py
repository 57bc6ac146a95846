"""Who is calling the gateway, and how they label the call."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Caller:
    """Who is calling and how they label the call (from headers or the `user` field)."""

    user_id: str | None = None
    session_id: str | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    # W3C trace context of a caller that traces too (the SDK): continue its trace
    trace_id: str | None = None
    parent_span_id: str | None = None
    # Cache-Control directives of the request: `no-cache` (do not answer from the cache),
    # `no-store` (do not keep the answer either)
    cache_control: frozenset[str] = frozenset()
