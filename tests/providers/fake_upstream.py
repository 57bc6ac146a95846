"""A scripted provider on a real localhost HTTP server, for the adapters' wire tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass
class Reply:
    """One scripted answer: a JSON body (bytes or an object), or SSE pieces one by one."""

    status: int = 200
    body: bytes | dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    events: list[bytes] | None = None
    delay_s: float = 0.0  # before answering
    gap_s: float = 0.0  # pause between pieces, so that they reach the client as separate reads
    hang: bool = False  # never answer (until the test ends)
    hang_after_headers: bool = False


@dataclass
class Seen:
    """A request the fake received."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: dict[str, Any]


class FakeUpstream:
    """Serves scripted replies in order and records each request it received."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.seen: list[Seen] = []
        self.url = ""
        self.release = asyncio.Event()

    @property
    def last(self) -> Seen:
        """The latest request."""
        return self.seen[-1]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer with the next scripted reply."""
        headers = {k.lower(): v for k, v in request.headers.items()}
        body = orjson.loads(await request.read())
        self.seen.append(Seen(request.path, dict(request.query), headers, body))
        reply = self.replies.pop(0)
        if reply.hang:
            await self.release.wait()
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.events is None:
            raw = reply.body if isinstance(reply.body, bytes) else orjson.dumps(reply.body)
            return web.Response(
                body=raw,
                status=reply.status,
                headers={"Content-Type": "application/json", **reply.headers},
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if reply.hang_after_headers:
            await self.release.wait()
        for piece in reply.events:
            await response.write(piece)
            if reply.gap_s:
                await asyncio.sleep(reply.gap_s)
        return response


@asynccontextmanager
async def serving_fake() -> AsyncIterator[FakeUpstream]:
    """A FakeUpstream answering POSTs to any path on 127.0.0.1."""
    fake = FakeUpstream()
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", fake.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    fake.url = str(server.make_url("")).rstrip("/")
    try:
        yield fake
    finally:
        fake.release.set()
        await server.close()


def payloads(raw: bytes) -> list[Any]:
    """The JSON payloads of a stream's SSE bytes, with "[DONE]" as a string."""
    out: list[Any] = []
    for block in raw.split(b"\n\n"):
        if block:
            assert block.startswith(b"data: ")
            data = block[6:]
            out.append("[DONE]" if data == b"[DONE]" else orjson.loads(data))
    return out
