"""Build the app from settings and run it under uvicorn."""

from __future__ import annotations

import gc
import ipaddress
import logging
from typing import Any

import uvicorn

from controltower.errors import ConfigError
from controltower.plugins import provider_class
from controltower.server.app import GatewayApp
from controltower.settings import Deployment, Settings
from controltower.tracing import ObservabilityStore

log = logging.getLogger("controltower.server")

DEFAULT_DATABASE_URL = "sqlite:///controltower.db"


def make_provider(deployment: Deployment) -> Any:
    """The adapter registered for the deployment's provider."""
    return provider_class(deployment.provider)(deployment)


def build_app(settings: Settings, store: ObservabilityStore | None = None) -> GatewayApp:
    """The ASGI app over the configured store (opened and migrated here unless given)."""
    if store is None:
        from controltower.store import open_store

        store = open_store(settings.database_url or DEFAULT_DATABASE_URL)
    close = getattr(store, "close", None)
    return GatewayApp(settings, make_provider, store, on_shutdown=close)


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
    settings: Settings, host: str = "127.0.0.1", port: int = 4000, log_level: str = "warning"
) -> None:
    """Run the gateway until interrupted."""
    check_bind(host, settings)
    app = build_app(settings)
    tune_gc()
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop" if _has("uvloop") else "asyncio",
        http="httptools" if _has("httptools") else "h11",
        lifespan="on",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        log_level=log_level,
        timeout_graceful_shutdown=10,
    )
    uvicorn.Server(config).run()


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
