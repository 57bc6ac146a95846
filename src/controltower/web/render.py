"""The pages' Jinja environment (sandboxed, autoescaping) and the filters the templates use."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
from jinja2 import PackageLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

STATIC_DIR = Path(__file__).parent / "static"


def make_environment() -> SandboxedEnvironment:
    """The template environment of the UI, built once per app."""
    env = SandboxedEnvironment(
        loader=PackageLoader("controltower.web", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        ms=format_ms,
        cost=format_cost,
        tokens=format_tokens,
        when=format_time,
        short=short_id,
        pretty=pretty_json,
        compact=compact_json,
        score=format_score,
        script_json=script_json,
    )
    versions = _static_versions()
    env.globals.update(
        static=lambda name: f"/static/{name}?v={versions.get(name, '0')}",
        query=query_string,
    )
    return env


def format_ms(value: float | None) -> str:
    """A latency for people: `850 ms`, `1.24 s`, `2m 05s`."""
    if value is None:
        return "—"
    if value < 1:
        return f"{value:.2f} ms"
    if value < 1000:
        return f"{value:.0f} ms"
    if value < 60_000:
        return f"{value / 1000:.2f} s"
    minutes, seconds = divmod(round(value / 1000), 60)
    return f"{minutes}m {seconds:02d}s"


def format_cost(value: float | None) -> str:
    """Dollars with as many decimals as small LLM costs need."""
    if value is None:
        return "—"
    if value == 0:
        return "$0"
    if value >= 1:
        return f"${value:,.2f}"
    if value >= 0.01:
        return f"${value:.4f}"
    return f"${value:.6f}"


def format_tokens(value: int | None) -> str:
    """A token count with thousands separators."""
    return "—" if value is None else f"{value:,}"


def format_time(value: str | None) -> str:
    """An API time (`…T12:00:00.000001Z`) as `2024-05-01 12:00:00` (UTC)."""
    if not value:
        return "—"
    return value[:19].replace("T", " ")


def short_id(value: str | None, length: int = 8) -> str:
    """The first characters of an id."""
    return "" if value is None else value[:length]


def pretty_json(value: Any) -> str:
    """JSON indented for reading; strings as they are."""
    if isinstance(value, str):
        return value
    return orjson.dumps(value, default=str, option=orjson.OPT_INDENT_2).decode()


def compact_json(value: Any, limit: int = 200) -> str:
    """JSON on one line, cut after `limit` characters; strings as they are."""
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return text if len(text) <= limit else text[:limit] + "…"


def format_score(value: float | bool | str | None) -> str:
    """A score's value: booleans as true/false, numbers without noise."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.3f}".rstrip("0").rstrip(".")
    return "—" if value is None else str(value)


def script_json(value: Any) -> Markup:
    """JSON safe inside `<script type="application/json">`: no `<`, `>` or `&` left raw."""
    raw = orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)
    raw = raw.replace(b"<", b"\\u003c").replace(b">", b"\\u003e").replace(b"&", b"\\u0026")
    return Markup(raw.decode())


def query_string(
    params: Mapping[str, str | Sequence[str]], **changes: str | Sequence[str] | None
) -> str:
    """`?a=1&b=2` of the params with some changed (None removes one); empty values dropped.
    A list is a parameter given several times (`?param=a&param=b`)."""
    merged = {**params, **changes}
    kept = {key: value for key, value in merged.items() if value}
    return "?" + urlencode(kept, doseq=True) if kept else "?"


def _static_versions() -> dict[str, str]:
    # a content hash in each asset's URL, so that browsers never run a stale script
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:10]
        for path in STATIC_DIR.iterdir()
        if path.is_file()
    }
