"""Incremental parsing of server-sent events, as they arrive in arbitrary chunks."""

from __future__ import annotations


class SSEParser:
    """Feed raw bytes; get back the complete events (event name, data payload) so far."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[tuple[bytes | None, bytes]]:
        """Parse what is complete in buffer + chunk; keep the incomplete tail."""
        data = self._buffer + chunk if self._buffer else chunk
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        blocks = data.split(b"\n\n")
        self._buffer = blocks.pop()
        events = []
        for block in blocks:
            event = _parse_block(block)
            if event is not None:
                events.append(event)
        return events

    @property
    def pending(self) -> bytes:
        """Bytes received that do not end an event yet."""
        return self._buffer


def _parse_block(block: bytes) -> tuple[bytes | None, bytes] | None:
    name: bytes | None = None
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
        elif line.startswith(b"event:"):
            name = line[6:].strip()
    if not data:
        return None
    return name, b"\n".join(data)
