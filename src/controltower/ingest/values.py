"""How the ingest routes quote a refused value in their per-span reasons."""

from __future__ import annotations

from typing import Any


def shown(value: Any) -> str:
    """A short, always printable form of a value: huge integers by their size."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    try:
        return f"{value!r:.80}"
    except ValueError:  # a repr that cannot be made (over Python's digit limit)
        return type(value).__name__
