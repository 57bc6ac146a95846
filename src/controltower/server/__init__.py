"""HTTP adapters: the ASGI app and how to run it."""

from controltower.server.app import GatewayApp
from controltower.server.run import build_app, serve

__all__ = ["GatewayApp", "build_app", "serve"]
