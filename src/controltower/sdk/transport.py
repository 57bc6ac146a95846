"""Where batches go: a controltower server over HTTP, or the local store (embedded mode)."""

from __future__ import annotations

import http.client
import logging
import socket
import zlib
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import orjson

from controltower.errors import parse_retry_after

if TYPE_CHECKING:
    from controltower.sdk.runtime import SdkConfig
    from controltower.tracing import ObservabilityStore

log = logging.getLogger("controltower.sdk")


class RetryableError(Exception):
    """The batch may succeed later: 429, 5xx, a connection error, a store that is down."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RejectedError(Exception):
    """The batch will never be accepted as it is (4xx other than 429)."""


class Transport(Protocol):
    """Delivers one batch; returns the events rejected one by one, as (index, message)."""

    def send(self, body: bytes, events: int) -> list[tuple[int, str]]:
        """Deliver `{"batch": [...]}`; raise RetryableError or RejectedError."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...

    def forget(self) -> None:
        """Drop connections inherited across fork without closing them."""
        ...


def make_transport(config: SdkConfig) -> Transport:
    """HTTP to the configured URL, or the local store when there is none."""
    if config.url:
        return HttpTransport(config.url, config.api_key, config.timeout_s)
    return EmbeddedTransport(config.database_url, config.project)


class HttpTransport:
    """POST gzip JSON to `{url}/api/ingest` over one kept-alive connection."""

    def __init__(self, url: str, api_key: str | None, timeout_s: float) -> None:
        from controltower.version import __version__

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"the controltower URL must be http(s)://host[:port], not {url!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._path = parts.path.rstrip("/") + "/api/ingest"
        self._timeout = timeout_s
        self._headers = {
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "User-Agent": f"controltower-python/{__version__}",
        }
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._conn: http.client.HTTPConnection | None = None

    def send(self, body: bytes, events: int) -> list[tuple[int, str]]:
        """POST the batch; a kept-alive connection the server closed is retried at once."""
        payload = _gzip(body)
        reused = self._conn is not None
        try:
            status, headers, data = self._post(payload)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            if not reused:
                raise RetryableError(f"{type(exc).__name__}: {exc}") from exc
            try:  # the server may have closed an idle keep-alive connection
                status, headers, data = self._post(payload)
            except (OSError, http.client.HTTPException) as again:
                self.close()
                raise RetryableError(f"{type(again).__name__}: {again}") from again
        return _outcome(status, headers, data)

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def forget(self) -> None:
        """Drop the parent's connection in a forked child."""
        self._conn = None

    def _post(self, payload: bytes) -> tuple[int, http.client.HTTPMessage, bytes]:
        conn = self._conn
        if conn is None:
            kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = kind(self._host, self._port, timeout=self._timeout)
            conn.connect()
            # http.client writes the headers and a large body separately: without this the
            # body waits for the server's delayed ACK of the headers (Nagle), ~40 ms a batch
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conn = conn
        conn.request("POST", self._path, payload, self._headers)
        response = conn.getresponse()
        data = response.read()
        if response.will_close:
            self.close()
        return response.status, response.headers, data


def _outcome(status: int, headers: Any, data: bytes) -> list[tuple[int, str]]:
    if 200 <= status < 300:
        return []
    answer = _json(data)
    message = _message(answer, data)
    if status == 429 or status >= 500:
        retry_after = parse_retry_after(headers.get("Retry-After"))
        raise RetryableError(f"HTTP {status}: {message}", retry_after)
    errors = answer.get("errors") if isinstance(answer, dict) else None
    if status == 400 and isinstance(errors, list) and errors:
        return [
            (int(e.get("index", -1)), str(e.get("message", "")))
            for e in errors
            if isinstance(e, dict)
        ]
    raise RejectedError(f"HTTP {status}: {message}")


def _json(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


def _message(answer: Any, data: bytes) -> str:
    if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
        return str(answer["error"].get("message", ""))
    return data[:500].decode("utf-8", "replace")


def _gzip(body: bytes) -> bytes:
    # level 1: most of the size win for a fraction of the CPU of the default level
    return zlib.compress(body, 1, wbits=31)


class EmbeddedTransport:
    """Maps the batch with the server's own mapper and writes it into the local store."""

    def __init__(self, database_url: str, project: str | None) -> None:
        self._url = database_url
        self._project = project
        self._store: ObservabilityStore | None = None
        self._prices: Any = None

    def send(self, body: bytes, events: int) -> list[tuple[int, str]]:
        """Write the batch's traces and scores; a store that fails is retried."""
        from controltower.ingest import records_from_events

        result = records_from_events(orjson.loads(body)["batch"])
        store = self._open()
        for record in result.records:
            if self._project:
                record.trace.project = self._project
            self._prices.price_record(record)
        for score in result.scores:
            if self._project:
                score.project = self._project
        try:
            if result.records:
                store.write(result.records)
            if result.scores:
                store.write_scores(result.scores)
        except Exception as exc:  # locked or unreachable database: try again later
            raise RetryableError(f"writing to {self._safe_url()} failed: {exc}") from exc
        return [(index, message) for index, message in result.errors]

    def close(self) -> None:
        """Close the store's connections."""
        if self._store is not None:
            self._store.close()
            self._store = None

    def forget(self) -> None:
        """In a forked child: leave the parent's pooled connections alone."""
        if self._store is not None:
            self._store.forget_after_fork()
            self._store = None

    def _open(self) -> ObservabilityStore:
        if self._store is None:
            from controltower.cost import PriceTable
            from controltower.store import open_store

            try:
                self._store = open_store(self._url)
            except Exception as exc:
                raise RetryableError(f"opening {self._safe_url()} failed: {exc}") from exc
            self._prices = PriceTable()
            log.info("controltower SDK writing traces into %s", self._safe_url())
        return self._store

    def _safe_url(self) -> str:
        parts = urlsplit(self._url)
        if parts.password:
            return self._url.replace(f":{parts.password}@", ":***@")
        return self._url
