"""controltower: see, steer and protect what your LLMs do."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from controltower.version import __version__

__all__ = [
    "ExportStats",
    "LiveSpan",
    "Prompt",
    "PromptUnavailable",
    "__version__",
    "bind_context",
    "current_span",
    "flush",
    "get_current_span_id",
    "get_current_trace_id",
    "get_prompt",
    "init",
    "observe",
    "score",
    "shutdown",
    "span",
    "stats",
    "update_current_span",
    "update_trace",
    "wrap_openai",
]

# The SDK's names are imported on first use, so that `import controltower` stays cheap
# for the CLI and the server, and for applications until they trace something.
_SDK = frozenset(__all__) - {"__version__"}

if TYPE_CHECKING:
    from controltower.sdk import (
        ExportStats,
        LiveSpan,
        Prompt,
        PromptUnavailable,
        bind_context,
        current_span,
        flush,
        get_current_span_id,
        get_current_trace_id,
        get_prompt,
        init,
        observe,
        score,
        shutdown,
        span,
        stats,
        update_current_span,
        update_trace,
        wrap_openai,
    )


def __getattr__(name: str) -> Any:
    if name in _SDK:
        from controltower import sdk

        value = getattr(sdk, name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'controltower' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_SDK})
