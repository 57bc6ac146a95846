"""Shared fixtures: a real gateway on a random localhost port, and service URLs."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import openai
import pytest
import uvicorn

from controltower.server import build_app
from controltower.server.app import GatewayApp
from controltower.settings import Settings, parse_settings
from controltower.store import InMemoryStore


@dataclass
class RunningGateway:
    """A gateway serving on 127.0.0.1 in a background thread."""

    url: str
    app: GatewayApp
    store: Any
    clients: list[openai.OpenAI] = field(default_factory=list)

    def client(self, api_key: str = "unused") -> openai.OpenAI:
        """The official client pointed at this gateway; closed when the gateway stops."""
        made = openai.OpenAI(base_url=self.base_url, api_key=api_key, max_retries=0)
        self.clients.append(made)
        return made

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def trace(self, trace_id: str) -> dict[str, Any]:
        """The stored trace, once written.

        A stream's trace is queued when the server has finished the stream, which can be
        a moment after the client read its last byte: wait for it, up to 5 s.
        """
        deadline = time.monotonic() + 5
        while True:
            assert self.app.writer.flush(5)
            found = self.store.get_trace(trace_id)
            if found is not None or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        assert found is not None, f"trace {trace_id} was not stored"
        return found  # type: ignore[no-any-return]

    def provider(self, alias: str, index: int = 0) -> Any:
        return self.app.gateway.balanced[alias].states[index].provider


@contextmanager
def running_gateway(settings: Settings, store: Any | None = None) -> Iterator[RunningGateway]:
    """Start the real ASGI app under uvicorn on a free port; stop it on exit."""
    store = InMemoryStore() if store is None else store
    app = build_app(settings, store)
    # IPPROTO_TCP so that asyncio sets TCP_NODELAY on accepted connections
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, lifespan="on", log_level="error", access_log=False, loop="none", http="httptools"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        threading.Event().wait(0.01)
    assert server.started, "the gateway did not start"
    running = RunningGateway(f"http://127.0.0.1:{port}", app, store)
    try:
        yield running
    finally:
        for made in running.clients:
            made.close()
        server.should_exit = True
        thread.join(10)
        sock.close()


def chat_as(client: openai.OpenAI, model: str = "demo", user: str = "ann", **kw: Any) -> Any:
    """A short chat completion from an end user, with the raw response (for headers)."""
    return client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "one two three"}], user=user, **kw
    )


def config(text: str, **env: str) -> Settings:
    """Settings from YAML text, as `controltower serve --config` would build them."""
    return parse_settings(text, "test.yaml", environ=env)


DEMO = """
models:
  - name: demo
    deployments:
      - provider: mock
        model: demo-model
        price: {input: 1.0, output: 2.0}
"""


@pytest.fixture
def demo_gateway() -> Iterator[RunningGateway]:
    with running_gateway(config(DEMO)) as gw:
        yield gw


POSTGRES_URL_ENV = "CONTROLTOWER_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _unreachable(reason: str) -> None:
    _missing("PostgreSQL", f"{reason}; set {POSTGRES_URL_ENV} or start it")


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """The base URL of the test PostgreSQL server; skips (or fails on CI) when unreachable."""
    url = os.environ.get(POSTGRES_URL_ENV, DEFAULT_POSTGRES_URL)
    try:
        import psycopg
    except ImportError as exc:
        _unreachable(f"psycopg is not installed: {exc}")
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error as exc:
        _unreachable(f"{url}: {exc}")
    return url


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A URL whose search_path is a fresh, empty schema; the schema is dropped afterwards."""
    import psycopg

    schema = f"ct_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in postgres_server_url else "?"
    options = quote(f"-csearch_path={schema}", safe="")
    try:
        yield f"{postgres_server_url}{separator}options={options}"
    finally:
        with psycopg.connect(postgres_server_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A URL of a SQLite file in a directory that does not exist yet."""
    return f"sqlite:///{tmp_path / 'data' / 'traces.db'}"


REDIS_URL_ENV = "CONTROLTOWER_TEST_REDIS_URL"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="session")
def redis_server_url() -> str:
    """The test Redis server's URL; skips (or fails on CI) when unreachable."""
    url = os.environ.get(REDIS_URL_ENV, DEFAULT_REDIS_URL)
    try:
        import redis
    except ImportError as exc:
        _missing("Redis", f"the redis package is not installed: {exc}")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        _missing("Redis", f"{url}: {exc}; set {REDIS_URL_ENV} or start redis-server")
    return url


@contextmanager
def emptied_redis_db(server_url: str, db: int) -> Iterator[str]:
    """The URL of one database of the test Redis, emptied before and after (for servers
    configured by URL, whose keys no prefix can set apart)."""
    import redis

    url = f"{server_url.rsplit('/', 1)[0]}/{db}"
    redis.Redis.from_url(url).flushdb()
    try:
        yield url
    finally:
        redis.Redis.from_url(url).flushdb()


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix of this test's own, so that tests share one Redis without meeting."""
    return f"ct-test:{uuid.uuid4().hex[:12]}:"


def _missing(service: str, reason: str) -> None:
    # In CI a missing server is a broken pipeline, not a reason to skip silently.
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{service} is required when CI=true: {reason}")
    pytest.skip(f"{service} not reachable ({reason})")
