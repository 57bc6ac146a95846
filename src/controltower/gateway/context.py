"""What one gateway call is for: filled before the chain runs, read by what needs it.

Authentication and the request's headers say who calls and how they label the call (the
`Caller`), and which project it belongs to; prompt resolution says which prompt version
it serves. The chain and the trace read them here, rather than each being passed along
as an argument of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from controltower.domain import new_trace_id
from controltower.gateway.caller import Caller
from controltower.gateway.prompts import PromptUse

DEFAULT_PROJECT = "default"


@dataclass(slots=True)
class CallContext:
    """One call's caller, project, API key, prompt version and trace id."""

    caller: Caller = field(default_factory=Caller)
    trace_id: str = field(default_factory=new_trace_id)
    project: str = DEFAULT_PROJECT
    key_id: str | None = None  # the API key the call came with (None: the master key)
    prompt: PromptUse | None = None  # set by prompt resolution
    # headers the chain adds to the answer (the rate limits' x-ratelimit-*, the cache's)
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    reserved_usd: float | None = None  # what the call's budgets held (set by `limited`)
    cache: Any = None  # what the cache did for the call (a CacheUse, set by `cached`)

    @classmethod
    def of(cls, caller: Caller, trace_id: str | None = None) -> CallContext:
        """The context of a call from `caller`: in the caller's own trace when it sent one
        (W3C traceparent), else in `trace_id`, else in a new trace."""
        return cls(caller, caller.trace_id or trace_id or new_trace_id())
