"""A lean HTTP/1.1 client for provider calls: keep-alive pools on asyncio and httptools.

The gateway's profile showed the general-purpose client (aiohttp) taking about 40 % of
the event loop per proxied call: request and response objects, cookie jars, header
multidicts, trace hooks. Provider calls need none of that: one POST of a JSON body to a
fixed origin, the answer read whole or streamed. httptools (the parser uvicorn uses)
does the HTTP parsing; this module only pools connections and moves bytes.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from urllib.parse import urlsplit

import httptools

MAX_BUFFERED_CHUNKS = 64  # pause reading a stream the client consumes slower than it arrives
SWEEP_INTERVAL_S = 0.05  # how often deadlines are checked: timeouts are this precise


class TransportError(Exception):
    """The connection failed or the answer was not valid HTTP."""


class Headers(dict[str, str]):
    """Response headers with lower-case names; `get` ignores case."""

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        """The header's value, whatever the case of `name`."""
        return super().get(name.lower(), default)


class HttpResponse:
    """One answer: status and headers at once, then the body whole or chunk by chunk."""

    __slots__ = ("_connection", "_pool", "headers", "status")

    def __init__(self, connection: _Connection, pool: HttpClient) -> None:
        self._connection = connection
        self._pool = pool
        self.status = connection.status
        self.headers = Headers(
            (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in connection.headers
        )

    async def read(self) -> bytes:
        """The whole body, within the deadline the request was sent with."""
        parts = []
        while chunk := await self._connection.read_chunk():
            parts.append(chunk)
        return b"".join(parts)

    async def readany(self, timeout_s: float) -> bytes:
        """The next part of the body as it arrives, within `timeout_s`; b"" at its end."""
        self._connection.deadline = self._pool.clock() + timeout_s
        return await self._connection.read_chunk()

    def release(self) -> None:
        """Give the connection back for reuse, or close it if the answer was not read."""
        self._pool.release(self._connection)


class HttpClient:
    """A keep-alive connection pool to one origin (scheme, host, port)."""

    def __init__(
        self,
        base_url: str,
        *,
        max_idle: int = 100,
        connect_timeout_s: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.tls = parts.scheme == "https"
        self.path_prefix = parts.path.rstrip("/")
        default_port = self.port == (443 if self.tls else 80)
        host_header = self.host if default_port else f"{self.host}:{self.port}"
        self._host_line = f"Host: {host_header}\r\n".encode("latin-1")
        self._idle: deque[_Connection] = deque()
        self._busy: set[_Connection] = set()
        self._sweeping = False
        self._max_idle = max_idle
        self._connect_timeout_s = connect_timeout_s
        # None: the system's trust store (SSL_CERT_FILE / SSL_CERT_DIR are honoured)
        self._ssl = ssl_context

    def head(self, path: str, headers: dict[str, str]) -> bytes:
        """The fixed part of a POST's head (all but Content-Length), built once per route."""
        lines = [f"POST {self.path_prefix}{path} HTTP/1.1\r\n".encode("latin-1"), self._host_line]
        lines += [f"{k}: {v}\r\n".encode("latin-1") for k, v in headers.items()]
        return b"".join(lines)

    clock = staticmethod(time.monotonic)  # deadlines are measured on it

    async def post(self, head: bytes, body: bytes, timeout_s: float) -> HttpResponse:
        """Send a request built on `head`; return once the answer's headers are in.

        TimeoutError when the headers and then the whole body (if read) take longer than
        `timeout_s`; a stream's later reads have their own idle timeout.
        """
        request = b"%sContent-Length: %d\r\n\r\n%s" % (head, len(body), body)
        deadline = self.clock() + timeout_s
        connection, reused = await self._acquire()
        self._watch(connection, deadline)
        try:
            await connection.send(request)
        except TransportError:
            connection.close()
            if not reused or connection.got_bytes:
                raise
            # the server closed an idle connection as we reused it: once more, on a new one
            self._busy.discard(connection)
            connection, _ = await self._acquire(fresh=True)
            self._watch(connection, deadline)
            try:
                await connection.send(request)
            except BaseException:
                connection.close()
                raise
        except BaseException:
            connection.close()
            raise
        return HttpResponse(connection, self)

    def release(self, connection: _Connection) -> None:
        """Pool a connection whose answer was read to the end; close any other."""
        self._busy.discard(connection)
        if connection.reusable and len(self._idle) < self._max_idle:
            self._idle.append(connection)
        else:
            connection.close()

    async def aclose(self) -> None:
        """Close every idle connection."""
        while self._idle:
            self._idle.pop().close()

    def _watch(self, connection: _Connection, deadline: float) -> None:
        # One periodic sweep instead of a timer per request: timers were a tenth of the
        # proxy's CPU time per call.
        connection.deadline = deadline
        self._busy.add(connection)
        if not self._sweeping:
            self._sweeping = True
            asyncio.get_running_loop().call_later(SWEEP_INTERVAL_S, self._sweep)

    def _sweep(self) -> None:
        now = self.clock()
        # only a connection we are waiting on can be late: a stream paused by a slow
        # client is not the provider's fault
        for connection in [c for c in self._busy if c.deadline <= now and c.waiting]:
            self._busy.discard(connection)
            connection.expire()
        self._sweeping = bool(self._busy)
        if self._sweeping:
            asyncio.get_running_loop().call_later(SWEEP_INTERVAL_S, self._sweep)

    async def _acquire(self, fresh: bool = False) -> tuple[_Connection, bool]:
        while self._idle and not fresh:
            connection = self._idle.pop()
            if not connection.closed:
                return connection, True
        loop = asyncio.get_running_loop()
        if self.tls and self._ssl is None:
            self._ssl = ssl.create_default_context()
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                _, connection = await loop.create_connection(
                    _Connection,
                    self.host,
                    self.port,
                    ssl=self._ssl,
                    server_hostname=self.host if self.tls else None,
                )
        except (OSError, ssl.SSLError) as exc:
            raise TransportError(f"cannot connect to {self.host}:{self.port}: {exc}") from None
        except TimeoutError:
            raise TransportError(f"connecting to {self.host}:{self.port} timed out") from None
        return connection, False


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection parsing one answer at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.got_bytes = False
        self.complete = False
        self._keep_alive = False
        self._parser = httptools.HttpResponseParser(self)
        self._chunks: deque[bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._error: TransportError | None = None
        self._paused = False
        self._framed = False  # the answer says where it ends (length or chunked)
        self.deadline = 0.0

    @property
    def reusable(self) -> bool:
        """Whether the answer was read whole and the server keeps the connection open."""
        return self.complete and self._keep_alive and not self.closed and not self._chunks

    # -- driven by the client ------------------------------------------------------------

    async def send(self, request: bytes) -> None:
        """Write a request and wait for the answer's headers."""
        self.status, self.headers, self.got_bytes, self.complete = 0, [], False, False
        self._parser = httptools.HttpResponseParser(self)
        self._framed = False
        assert self.transport is not None
        self.transport.write(request)
        while not self.status:
            await self._wait()

    async def read_chunk(self) -> bytes:
        """All body bytes received so far (at least one chunk); b"" once the answer is complete.

        Joining what arrived together keeps a burst of stream events to one write to the
        client instead of one per event.
        """
        chunks = self._chunks
        while not chunks:
            if self.complete:
                return b""
            await self._wait()
        data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        if self._paused:
            self._paused = False
            if self.transport is not None:
                self.transport.resume_reading()
        return data

    def close(self) -> None:
        """Drop the connection."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    @property
    def waiting(self) -> bool:
        """Whether a reader is waiting for the provider."""
        return self._waiter is not None

    def expire(self) -> None:
        """The deadline passed: fail the waiting reader and drop the connection."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(TimeoutError("the answer took longer than its deadline"))
        self.close()

    async def _wait(self) -> None:
        if self._error is not None:
            raise self._error
        self._waiter = waiter = asyncio.get_running_loop().create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: TransportError) -> None:
        self._error = error
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(TransportError(f"the answer is not valid HTTP: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.status and not self.complete and not self._framed:
            self.complete = True  # an answer delimited by the end of the connection
            self._wake()
        elif not self.complete:
            reason = f": {exc}" if exc else ""
            self._fail(TransportError(f"the connection closed before the answer ended{reason}"))

    # -- httptools callbacks -------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        lowered = name.lower()
        if lowered in (b"content-length", b"transfer-encoding"):
            self._framed = True

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        self._wake()

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        if len(self._chunks) >= MAX_BUFFERED_CHUNKS and not self._paused:
            self._paused = True
            if self.transport is not None:
                self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self._keep_alive = self._parser.should_keep_alive()
        self._wake()
