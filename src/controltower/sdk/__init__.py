"""The Python SDK: trace an application's own code and its OpenAI calls.

`import controltower as ct` re-exports all of this lazily; see docs/sdk.md.
"""

from controltower.sdk.api import (
    bind_context,
    current_span,
    get_current_span_id,
    get_current_trace_id,
    score,
    span,
    update_current_span,
    update_trace,
)
from controltower.sdk.decorator import observe
from controltower.sdk.exporter import ExportStats
from controltower.sdk.live import LiveSpan
from controltower.sdk.openai_wrap import wrap_openai
from controltower.sdk.prompts import Prompt, PromptUnavailable, get_prompt
from controltower.sdk.runtime import SdkConfig, flush, init, shutdown, stats

__all__ = [
    "ExportStats",
    "LiveSpan",
    "Prompt",
    "PromptUnavailable",
    "SdkConfig",
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
