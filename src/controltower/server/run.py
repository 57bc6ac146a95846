"""Build the app from settings and run it under uvicorn."""

from __future__ import annotations

import gc
import ipaddress
import logging
import os
from typing import Any

import uvicorn

from controltower.errors import ConfigError
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
    close = getattr(store, "close", None)
    # prompts live in the same database as the traces (an in-memory store serves tests)
    engine = getattr(store, "engine", None)
    prompt_store = None
    if engine is not None:
        from controltower.store import SqlPromptStore

        prompt_store = SqlPromptStore(engine)
    return GatewayApp(settings, make_provider, store, prompt_store=prompt_store, on_shutdown=close)


def check_bind(host: str, settings: Settings) -> None:
    """Refuse to listen beyond loopback without a master key."""
    if settings.master_key is not None or _is_loopback(host):
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


def serve(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 4000,
    log_level: str = "warning",
    *,
    workers: int = 1,
    config_path: str | None = None,
) -> None:
    """Run the gateway until interrupted, in one process or in `workers` processes."""
    check_bind(host, settings)
    options = _uvicorn_options(host, port, log_level)
    if workers > 1:
        # migrate once, here, rather than in every worker at the same moment
        build_store(settings).close()
        os.environ[_WORKER_CONFIG] = config_path or ""
        uvicorn.run(f"{__name__}:worker_app", factory=True, workers=workers, **options)
        return
    app = build_app(settings)
    tune_gc()
    uvicorn.Server(uvicorn.Config(app, **options)).run()


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


def _uvicorn_options(host: str, port: int, log_level: str) -> dict[str, Any]:
    return {
        "host": host,
        "port": port,
        "loop": "uvloop" if _has("uvloop") else "asyncio",
        "http": "httptools" if _has("httptools") else "h11",
        "lifespan": "on",
        "access_log": False,
        "proxy_headers": False,
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
