"""The skeleton both streaming adapters share: hold the first events, then relay the rest."""

from __future__ import annotations

from collections.abc import AsyncIterator

from controltower.errors import APIError
from controltower.providers.base import ChatRequest, ChatStream, StreamSummary
from controltower.providers.http import Upstream
from controltower.providers.sse import SSEParser
from controltower.providers.transport import HttpResponse


class SSERelay:
    """Reads a provider's server-sent events and turns them into OpenAI SSE bytes.

    Subclasses say how in `_process`. `open` returns only once the answer has started,
    so that the gateway can still fall back before the client got a byte.
    """

    end_marker = "[DONE]"  # named in the error when the stream stops before it

    def __init__(self, response: HttpResponse, upstream: Upstream, request: ChatRequest) -> None:
        self._response = response
        self._upstream = upstream
        self._label = upstream.label
        self._wants_usage = request.client_wants_usage
        self._timeout_s = request.timeout_s
        self._parser = SSEParser()
        self.summary = StreamSummary()
        self.opened = False
        self.done = False

    async def open(self) -> ChatStream:
        """Raise the provider's error, or return the stream once its answer has started."""
        response = self._response
        if response.status >= 300:
            await self._upstream.read_ok(response)
        try:
            first = await self._first_events()
        except APIError as exc:  # an error event, which may quote the request
            response.release()
            self._upstream.scrubber.error(exc)
            raise
        except BaseException:
            response.release()
            raise
        return ChatStream(self._events(first), self.summary)

    def _process(self, chunk: bytes) -> tuple[bytes, bool]:
        """Client-bound bytes for a chunk of upstream bytes, and whether the answer started."""
        raise NotImplementedError

    async def _first_events(self) -> bytes:
        out: list[bytes] = []
        while True:
            data, started = self._process(await self._read())
            out.append(data)
            if started or self.done:
                self.opened = True
                return b"".join(out)

    async def _events(self, first: bytes) -> AsyncIterator[bytes]:
        try:
            if first:
                yield first
            while not self.done:
                out, _ = self._process(await self._read())
                if out:
                    yield out
            await self._upstream.drain(self._response, self._timeout_s)
        except APIError as exc:
            self._upstream.scrubber.error(exc)
            raise
        finally:
            self._response.release()

    async def _read(self) -> bytes:
        return await self._upstream.read_stream(self._response, self._timeout_s, self.end_marker)
