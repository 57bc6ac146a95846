"""Opaque keyset-pagination cursors over (start_us, id), newest first."""

from __future__ import annotations

import base64

import orjson

from controltower.domain.trace import INT64_MAX
from controltower.errors import InvalidRequest

MAX_PAGE_SIZE = 1000
_MAX_CURSOR_CHARS = 4096  # ids are at most a few hundred characters; this is plenty


def encode_cursor(start_us: int, trace_id: str) -> str:
    """A url-safe cursor pointing after the trace (start_us, trace_id)."""
    raw = orjson.dumps([start_us, trace_id])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """The (start_us, id) a cursor points after; InvalidRequest when it was not made here."""
    if len(cursor) > _MAX_CURSOR_CHARS:
        raise _invalid()
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = orjson.loads(raw)
    except ValueError as exc:  # binascii.Error and JSONDecodeError are ValueErrors
        raise _invalid() from exc
    if not (isinstance(value, list) and len(value) == 2):
        raise _invalid()
    start_us, trace_id = value
    # a number past 64 bits or a NUL cannot be bound as a parameter on every database
    if type(start_us) is not int or not -INT64_MAX - 1 <= start_us <= INT64_MAX:
        raise _invalid()
    if not isinstance(trace_id, str) or "\x00" in trace_id:
        raise _invalid()
    return start_us, trace_id


def check_limit(limit: int) -> None:
    """Raise InvalidRequest unless 1 <= limit <= MAX_PAGE_SIZE."""
    if type(limit) is not int or not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidRequest(
            f"limit must be an integer from 1 to {MAX_PAGE_SIZE}, got {limit!r}", param="limit"
        )


def _invalid() -> InvalidRequest:
    return InvalidRequest(
        "cursor is not valid: pass the next_cursor of a previous page unchanged", param="cursor"
    )
