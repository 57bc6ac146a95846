"""Build the app from settings and run it under uvicorn."""

from __future__ import annotations

import contextlib
import errno
import gc
import ipaddress
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn

from controltower.errors import ConfigError
from controltower.gateway.metrics import MULTIPROC_ENV
from controltower.plugins import provider_class, provider_names
from controltower.server.app import GatewayApp
from controltower.settings import Deployment, Settings, load_settings, with_demo_model
from controltower.tracing import ObservabilityStore

log = logging.getLogger("controltower.server")

DEFAULT_DATABASE_URL = "sqlite:///controltower.db"
_WORKER_CONFIG = "CONTROLTOWER_WORKER_CONFIG"  # the config file, for worker processes


def make_provider(deployment: Deployment) -> Any:
    """The adapter registered for the deployment's provider."""
    return provider_class(deployment.provider)(deployment)


def build_app(settings: Settings, store: ObservabilityStore | None = None) -> GatewayApp:
    """The ASGI app over the configured store (opened and migrated here unless given)."""
    if store is None:
        store = build_store(settings)
    # prompts live in the same database as the traces
    return GatewayApp(
        settings,
        make_provider,
        store,
        prompt_store=store.prompt_store(),
        eval_store=store.eval_store(),
        key_store=store.key_store(),
        on_shutdown=store.close,
    )


def check_bind(host: str, settings: Settings) -> None:
    """Refuse to listen beyond loopback without a master key (an empty one is none)."""
    key = settings.master_key
    if (key is not None and key.get_secret_value().strip()) or _is_loopback(host):
        return
    raise ConfigError(
        [
            f"--host {host}: listening on an interface other than loopback needs a master key; "
            "set master_key in the config or CONTROLTOWER_MASTER_KEY, or use --host 127.0.0.1"
        ]
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_port(host: str, port: int) -> None:
    """Refuse early, naming the fix, when nothing could listen on host:port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind((host, port))
    except OSError as exc:
        other = port + 1 if port < 65535 else 4000
        from controltower.settings import PORT_ENV

        fix = f"choose another port with --port {other} (or {PORT_ENV}={other})"
        if exc.errno == errno.EADDRINUSE:
            problem = f"port {port} on {host} is already in use (is controltower running?)"
            fix = f"stop what listens there, or {fix}"
        else:
            problem = f"cannot listen on {host} port {port} ({exc.strerror or exc})"
            fix = f"{fix}, or another --host"
        raise ConfigError([f"--port {port}: {problem}; fix: {fix}"]) from None


def serve(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 4000,
    log_level: str = "warning",
    *,
    workers: int = 1,
    config_path: str | None = None,
    announce: Callable[[], None] | None = None,
) -> None:
    """Run the gateway until interrupted, in one process or in `workers` processes.

    `announce` is called once the bind is allowed, the port is free and the store is open,
    just before the server starts listening.
    """
    check_bind(host, settings)
    check_port(host, port)
    options = _uvicorn_options(host, port, log_level, settings)
    if workers > 1:
        # migrate once, here, rather than in every worker at the same moment
        build_store(settings).close()
        os.environ[_WORKER_CONFIG] = config_path or ""
        if settings.database_url:  # workers read the config again: keep a URL given apart
            from controltower.settings import DATABASE_URL_ENV

            os.environ[DATABASE_URL_ENV] = settings.database_url
        if announce is not None:
            announce()
        with _shared_metrics():
            uvicorn.run(f"{__name__}:worker_app", factory=True, workers=workers, **options)
        return
    app = build_app(settings)
    tune_gc()
    if announce is not None:
        announce()
    uvicorn.Server(uvicorn.Config(app, **options)).run()


@contextlib.contextmanager
def _shared_metrics() -> Iterator[None]:
    """Workers write their metrics to files in one directory, so that a scrape of any
    of them sees all (prometheus-client's multi-process mode); a directory the operator
    set in PROMETHEUS_MULTIPROC_DIR is used as it is, else a fresh one, removed after."""
    if os.environ.get(MULTIPROC_ENV):
        yield
        return
    directory = tempfile.mkdtemp(prefix="controltower-metrics-")
    os.environ[MULTIPROC_ENV] = directory
    try:
        yield
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(directory, ignore_errors=True)


def worker_app() -> GatewayApp:
    """The app of one worker process: `serve(workers=N)` has each worker build its own."""
    path = os.environ.get(_WORKER_CONFIG) or None
    settings = with_demo_model(load_settings(path, known_providers=provider_names()))
    app = build_app(settings)
    tune_gc()
    return app


def build_store(settings: Settings) -> Any:
    """The configured trace store, opened and migrated."""
    from controltower.store import open_store

    return open_store(settings.database_url or DEFAULT_DATABASE_URL)


def _uvicorn_options(host: str, port: int, log_level: str, settings: Settings) -> dict[str, Any]:
    return {
        "host": host,
        "port": port,
        "loop": "uvloop" if _has("uvloop") else "asyncio",
        "http": "httptools" if _has("httptools") else "h11",
        "lifespan": "on",
        "access_log": False,
        "proxy_headers": settings.proxy_headers,
        "forwarded_allow_ips": ",".join(settings.trusted_proxies),
        "server_header": False,
        "log_level": log_level,
        "timeout_graceful_shutdown": 10,
    }


def tune_gc() -> None:
    """Collect the young generation less often: ingest and proxying allocate many short-lived
    objects, and the default threshold (700) made collections a quarter of ingest's CPU.
    Objects alive after start-up are frozen out of every later collection."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def _has(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True
