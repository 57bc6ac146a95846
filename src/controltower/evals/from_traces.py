"""Dataset items made from recorded traces: production questions, and what was answered."""

from __future__ import annotations

from typing import Any

from controltower.domain.dataset import DatasetItem

MAX_TRACES = 10_000  # one `add-from-traces` reads at most this many


def _messages(value: Any) -> Any:
    if isinstance(value, dict) and isinstance(value.get("messages"), list):
        return value["messages"]
    return value


def _answer(value: Any) -> Any:
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    if isinstance(value, list) and len(value) == 1:
        return _answer(value[0])
    return value


def item_from_trace(trace: dict[str, Any], *, expected: bool = True) -> DatasetItem:
    """An item whose input is the trace's input (its chat messages when it has them);
    its expected answer is the trace's output unless `expected` is False. The item's id is
    the trace's, so adding the same trace twice adds it once."""
    metadata: dict[str, Any] = {"trace_id": trace["id"]}
    for key in ("name", "user_id", "session_id", "model", "environment", "release"):
        if trace.get(key):
            metadata[key] = trace[key]
    output = _answer(trace.get("output")) if expected else None
    return DatasetItem(
        id=f"trace-{trace['id']}",
        input=_messages(trace.get("input")),
        expected=output,
        metadata=metadata,
    )
