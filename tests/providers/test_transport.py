"""The lean HTTP/1.1 client against a raw asyncio server that misbehaves on purpose."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import trustme

from controltower.providers.transport import HttpClient, TransportError

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
Serve = Callable[[Handler], Awaitable[HttpClient]]


class RawServer:
    """Serves each connection with `handler`; counts connections."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=ssl_context)
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + await reader.readexactly(length)


def answer(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


async def keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        request = await read_request(reader)
        writer.write(answer(request.split(b"\r\n\r\n", 1)[1]))
        await writer.drain()


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[RawServer] = []
    clients: list[HttpClient] = []

    async def start(handler: Handler) -> HttpClient:
        server = RawServer(handler)
        servers.append(server)
        port = await server.start()
        client = HttpClient(f"http://127.0.0.1:{port}/v1")
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.aclose()
    for server in servers:
        await server.stop()


async def test_keep_alive_reuses_one_connection(serve: Serve) -> None:
    client = await serve(keep_alive)
    head = client.head("/echo", {"Content-Type": "application/json"})
    assert head.startswith(b"POST /v1/echo HTTP/1.1\r\nHost: 127.0.0.1:")
    for i in range(3):
        response = await client.post(head, b'{"n": %d}' % i, 5)
        assert response.status == 200
        assert await response.read() == b'{"n": %d}' % i
        response.release()
    assert client._idle and len(client._idle) == 1


async def test_a_connection_closed_while_idle_is_replaced_transparently(serve: Serve) -> None:
    async def one_answer_per_connection(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await read_request(reader)
        writer.write(answer(b"ok"))  # says keep-alive, then closes anyway
        await writer.drain()

    client = await serve(one_answer_per_connection)
    head = client.head("/x", {})
    first = await client.post(head, b"{}", 5)
    assert await first.read() == b"ok"
    first.release()
    await asyncio.sleep(0.05)  # the server's close reaches the idle connection
    second = await client.post(head, b"{}", 5)
    assert await second.read() == b"ok"


async def test_chunked_stream_arrives_in_order_and_bursts_are_joined(serve: Serve) -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        writer.write(b"5\r\nfirst\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"3\r\ntwo\r\n5\r\nthree\r\n0\r\n\r\n")  # two chunks in one burst
        await writer.drain()
        await asyncio.sleep(1)

    client = await serve(chunked)
    response = await client.post(client.head("/s", {}), b"{}", 5)
    assert response.headers.get("Transfer-Encoding") == "chunked"
    assert await response.readany(5) == b"first"
    assert await response.readany(5) == b"twothree"
    assert await response.readany(5) == b""
    response.release()
    assert len(client._idle) == 1  # read to the end: reusable


async def test_body_delimited_by_close(serve: Serve) -> None:
    async def close_delimited(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\n\r\nuntil the end")

    client = await serve(close_delimited)
    response = await client.post(client.head("/c", {}), b"{}", 5)
    assert await response.read() == b"until the end"
    response.release()
    assert not client._idle


async def test_no_answer_times_out_by_the_deadline_sweep(serve: Serve) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    client = await serve(silent)
    with pytest.raises(TimeoutError):
        await client.post(client.head("/t", {}), b"{}", 0.2)


async def test_stream_idle_timeout_and_a_paused_reader_is_not_expired(serve: Serve) -> None:
    async def stalls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n")
        await writer.drain()
        await asyncio.sleep(5)

    client = await serve(stalls)
    response = await client.post(client.head("/t", {}), b"{}", 0.2)
    await asyncio.sleep(0.4)  # nobody waits on it: past its deadline but not expired
    assert await response.readany(0.2) == b"hi"
    with pytest.raises(TimeoutError):
        await response.readany(0.2)
    response.release()


async def test_malformed_http_is_a_transport_error(serve: Serve) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    client = await serve(garbage)
    with pytest.raises(TransportError, match="not valid HTTP"):
        await client.post(client.head("/m", {}), b"{}", 5)


async def test_answer_cut_in_the_middle_is_a_transport_error(serve: Serve) -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        await writer.drain()

    client = await serve(cut)
    response = await client.post(client.head("/c", {}), b"{}", 5)
    with pytest.raises(TransportError, match="closed before the answer ended"):
        await response.read()
    response.release()


async def test_unread_answer_closes_its_connection(serve: Serve) -> None:
    client = await serve(keep_alive)
    response = await client.post(client.head("/u", {}), b"{}", 5)
    response.release()  # body not read
    assert not client._idle


async def test_connection_refused_is_a_transport_error() -> None:
    server = RawServer(keep_alive)
    port = await server.start()
    await server.stop()
    await asyncio.sleep(0.01)
    client = HttpClient(f"http://127.0.0.1:{port}")
    with pytest.raises(TransportError, match="cannot connect"):
        await client.post(client.head("/", {}), b"{}", 5)


async def test_https_with_a_trusted_certificate() -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    server = RawServer(keep_alive)
    port = await server.start(server_ctx)
    client = HttpClient(f"https://localhost:{port}", ssl_context=client_ctx)
    try:
        response = await client.post(client.head("/tls", {}), b"secret", 5)
        assert await response.read() == b"secret"
        response.release()
        untrusted = HttpClient(f"https://localhost:{port}")
        with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"):
            await untrusted.post(untrusted.head("/tls", {}), b"x", 5)
    finally:
        await client.aclose()
        await server.stop()


def test_only_http_urls() -> None:
    with pytest.raises(ValueError, match="not an http"):
        HttpClient("ftp://example.com")
