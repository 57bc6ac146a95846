"""What a list of traces shows of a payload: the value when it is short, else a preview.

Lists stay small whatever the traces hold; `GET /api/traces/{id}` has the whole value.
Both stores give the same answer: the SQL store reads only a prefix of each payload's
JSON text (`SCAN_CHARS`), and the decision is made on the compact JSON of the value.
"""

from __future__ import annotations

from typing import Any

import orjson

from controltower.store.serialize import json_dumps, json_loads

PREVIEW_CHARS = 500  # a payload whose compact JSON is longer is shown as a preview
# read by the SQL store: more than any text form of a value PREVIEW_CHARS long in compact
# JSON (PostgreSQL prints JSONB with a space after each `,` and `:`, never twice as long)
SCAN_CHARS = 4 * PREVIEW_CHARS
ELLIPSIS = "…"


def list_preview(value: Any) -> Any:
    """The value itself when its compact JSON is at most PREVIEW_CHARS long, else a
    string of its first PREVIEW_CHARS characters (the text of a string) and an ellipsis."""
    if value is None or isinstance(value, bool | int | float):
        return value
    text = json_dumps(value)  # as the SQL store keeps it
    return value if len(text) <= PREVIEW_CHARS else _cut(text)


def preview_from_prefix(prefix: str | None) -> Any:
    """list_preview of a stored payload, from the first SCAN_CHARS characters of its JSON."""
    if prefix is None:
        return None
    if len(prefix) < SCAN_CHARS:  # the whole value
        return list_preview(json_loads(prefix))
    return _cut(prefix)


def _cut(text: str) -> str:
    """The first PREVIEW_CHARS characters of a JSON text; a string's own characters."""
    if text.startswith('"'):
        text = _string_prefix(text[: PREVIEW_CHARS * 2])
    return text[:PREVIEW_CHARS] + ELLIPSIS


def _string_prefix(quoted: str) -> str:
    """The characters of a JSON string cut anywhere (maybe inside an escape)."""
    for drop in range(7):  # an escape is at most 6 characters (\uXXXX)
        try:
            decoded = orjson.loads(quoted[: len(quoted) - drop] + '"')
        except orjson.JSONDecodeError:
            continue
        if isinstance(decoded, str):
            return decoded
    return quoted[1:]
