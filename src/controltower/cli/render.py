"""Terminal rendering of traces with rich."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

Row = dict[str, Any]
# control characters (C0, DEL, C1) in trace data would move the cursor or recolour the
# terminal: they are shown escaped, as `\x1b`
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def safe(text: str, keep_newlines: bool = False) -> str:
    """Text from traces made harmless for a terminal: control characters escaped."""
    pattern = _CONTROL_BUT_NEWLINE if keep_newlines else _CONTROL
    return pattern.sub(lambda m: repr(m.group())[1:-1], text)


@dataclass(frozen=True)
class _Column:
    header: str
    cell: Callable[[Row], str]
    justify: Literal["left", "right"] = "left"
    shrinks_to: int | None = None  # a long name may be cut to this width; None: never cut


def _start(t: Row) -> str:
    return str(t["start_time"])[5:16].replace("T", " ")  # MM-DD HH:MM, in UTC


def _duration(t: Row) -> str:
    ms = t.get("latency_ms")
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms:.0f}ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f}s"
    minutes, seconds = divmod(round(ms / 1000), 60)
    return f"{minutes}m{seconds:02d}s"


def _tokens(t: Row) -> str:
    return str((t.get("usage") or {}).get("total_tokens") or "")


def _cost(cost: float | None) -> str:
    return "" if cost is None else f"{cost:.6f}"


# in the order shown; when the terminal is narrow, the last ones are left out
_COLUMNS = (
    _Column("start UTC", _start),
    _Column("trace id", lambda t: str(t["id"])),
    _Column("name", lambda t: str(t["name"]), shrinks_to=10),
    _Column("status", lambda t: str(t["status"])),
    _Column("time", _duration, "right"),
    _Column("cost $", lambda t: _cost(t.get("cost")), "right"),
    _Column("tokens", _tokens, "right"),
    _Column("user", lambda t: str(t.get("user_id") or ""), shrinks_to=8),
)


def trace_table(traces: list[Row], next_cursor: str | None, console: Console | None = None) -> None:
    """Print traces as a table as wide as the terminal (80 columns when not a terminal)."""
    console = console or Console()
    cells = [[safe(column.cell(t)) for column in _COLUMNS] for t in traces]
    widths = _fitting(cells, console.width)
    # one space between columns, none at the edges: the widths add up exactly
    table = Table(box=None, padding=(0, 1, 0, 0), pad_edge=False)
    for i, width in widths.items():
        column = _COLUMNS[i]
        table.add_column(
            column.header, justify=column.justify, width=width, no_wrap=True, overflow="ellipsis"
        )
    for t, row in zip(traces, cells, strict=True):
        table.add_row(*(_cell(row[i], _COLUMNS[i].header, t) for i in widths))
    console.print(table)
    left_out = [column.header for i, column in enumerate(_COLUMNS) if i not in widths]
    if left_out:
        console.print(
            f"not shown at this width: {', '.join(left_out)} (--json has all)", style="dim"
        )
    if next_cursor:
        console.print("next page: --cursor", style="dim")
        console.print(next_cursor, soft_wrap=True, highlight=False)


def _fitting(cells: list[list[str]], width: int) -> dict[int, int]:
    """The width of each column that fits in `width`; the first columns go in first."""
    natural = [
        max([len(c.header), *(len(row[i]) for row in cells)]) for i, c in enumerate(_COLUMNS)
    ]
    widths: dict[int, int] = {}
    used = -1  # one space between two columns
    for i, column in enumerate(_COLUMNS):
        need = natural[i]
        if column.shrinks_to is not None:
            need = min(need, max(column.shrinks_to, len(column.header)))
        if used + 1 + need > width:
            break
        widths[i] = need
        used += 1 + need
    spare = width - used
    for i in widths:  # room left goes to the names that were cut, in column order
        extra = min(spare, natural[i] - widths[i])
        widths[i] += extra
        spare -= extra
    return widths


def _cell(value: str, header: str, t: Row) -> Text:
    if header == "status":
        return Text(value, style="green" if t["status"] == "ok" else "red")
    return Text(value)  # never markup: names and user ids come from callers


def trace_tree(trace: dict[str, Any]) -> None:
    """Print one trace and its spans as a tree."""
    name, trace_id = escape(safe(trace["name"])), escape(safe(trace["id"]))
    root = Tree(f"[bold]{name}[/] {trace_id} {_status(trace['status'])}")
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in trace.get("spans", []):
        children.setdefault(span.get("parent_id"), []).append(span)
    for span in children.get(None, []):
        _add(root, span, children)
    console = Console()
    console.print(root)
    console.print("input:", _short(trace.get("input")), markup=False, highlight=False)
    console.print("output:", _short(trace.get("output")), markup=False, highlight=False)


def _add(
    node: Tree, span: dict[str, Any], children: dict[str | None, list[dict[str, Any]]]
) -> None:
    usage = span.get("usage") or {}
    label = (
        f"{escape(safe(span['kind']))} [bold]{escape(safe(span['name']))}[/] "
        f"{_status(span['status'])} "
        f"{span.get('latency_ms') or 0:.1f} ms"
    )
    if usage.get("total_tokens"):
        label += f"  tokens {usage.get('input_tokens')}→{usage.get('output_tokens')}"
    if span.get("cost") is not None:
        label += f"  ${span['cost']:.6f}"
    if span.get("error"):
        label += f"\n[red]{escape(safe(str(span['error'])))}[/]"
    branch = node.add(label)
    for child in children.get(span["id"], []):
        _add(branch, child, children)


def _status(status: str) -> str:
    return "[green]ok[/]" if status == "ok" else f"[red]{escape(safe(status))}[/]"


def _short(value: Any, limit: int = 400) -> str:
    text = orjson.dumps(value).decode() if not isinstance(value, str) else value
    text = text if len(text) <= limit else text[:limit] + "…"
    return safe(text, keep_newlines=True)
