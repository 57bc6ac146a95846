"""Terminal rendering of traces with rich."""

from __future__ import annotations

from typing import Any

import orjson
from rich.console import Console
from rich.table import Table
from rich.tree import Tree


def trace_table(traces: list[dict[str, Any]], next_cursor: str | None) -> None:
    """Print traces as a table."""
    table = Table(box=None)
    table.add_column("start", no_wrap=True)
    table.add_column("trace id", no_wrap=True, min_width=32)
    for column in ("name", "status", "tokens", "cost $", "ms", "user"):
        table.add_column(column)
    for t in traces:
        table.add_row(
            t["start_time"][:19].replace("T", " "),
            t["id"],
            t["name"],
            _status(t["status"]),
            str(t["usage"].get("total_tokens") or ""),
            _cost(t.get("cost")),
            f"{t['latency_ms']:.1f}" if t.get("latency_ms") is not None else "",
            t.get("user_id") or "",
        )
    console = Console()
    console.print(table)
    if next_cursor:
        console.print(f"more: --cursor {next_cursor}", style="dim")


def trace_tree(trace: dict[str, Any]) -> None:
    """Print one trace and its spans as a tree."""
    root = Tree(f"[bold]{trace['name']}[/] {trace['id']} {_status(trace['status'])}")
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in trace.get("spans", []):
        children.setdefault(span.get("parent_id"), []).append(span)
    for span in children.get(None, []):
        _add(root, span, children)
    console = Console()
    console.print(root)
    console.print("input:", _short(trace.get("input")))
    console.print("output:", _short(trace.get("output")))


def _add(
    node: Tree, span: dict[str, Any], children: dict[str | None, list[dict[str, Any]]]
) -> None:
    usage = span.get("usage") or {}
    label = (
        f"{span['kind']} [bold]{span['name']}[/] {_status(span['status'])} "
        f"{span.get('latency_ms') or 0:.1f} ms"
    )
    if usage.get("total_tokens"):
        label += f"  tokens {usage.get('input_tokens')}→{usage.get('output_tokens')}"
    if span.get("cost") is not None:
        label += f"  ${span['cost']:.6f}"
    if span.get("error"):
        label += f"\n[red]{span['error']}[/]"
    branch = node.add(label)
    for child in children.get(span["id"], []):
        _add(branch, child, children)


def _status(status: str) -> str:
    return "[green]ok[/]" if status == "ok" else f"[red]{status}[/]"


def _cost(cost: float | None) -> str:
    return "" if cost is None else f"{cost:.6f}"


def _short(value: Any, limit: int = 400) -> str:
    text = orjson.dumps(value).decode() if not isinstance(value, str) else value
    return text if len(text) <= limit else text[:limit] + "…"
