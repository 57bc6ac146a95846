"""The event loop an eval runs on when it is started from blocking code (the CLI,
`controltower.evals.run`): uvloop's where it is installed (a dependency on Linux and
macOS), asyncio's otherwise. On a 1,000-item run uvloop takes about a tenth off the
runner's own CPU: the loop's scheduling of timers and callbacks is part of every call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_to_end(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` on a new event loop and close it (Ctrl-C cancels it, as
    `asyncio.run` does)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)
