"""The ASGI application: hot OpenAI routes as raw handlers, everything else on Starlette."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from controltower.access import KeyRing, KeyStore
from controltower.cost import PriceTable
from controltower.domain import TraceRecord
from controltower.errors import APIError
from controltower.evals.store import EvalStore
from controltower.gateway import Gateway, PromptResolver
from controltower.gateway.metrics import GatewayMetrics
from controltower.gateway.service import ProviderFactory
from controltower.prompts import InMemoryPromptStore, PromptRenderer, PromptStore
from controltower.server.access_policy import check_access
from controltower.server.api import build_api
from controltower.server.asgi import (
    Receive,
    RequestGuard,
    Scope,
    Send,
    send_bytes,
    send_error,
    with_security_headers,
)
from controltower.server.auth import PRINCIPAL, KeyAuth, login_location, wants_page
from controltower.server.ingest_routes import ingest_routes
from controltower.server.key_routes import key_routes
from controltower.server.openai_routes import OpenAIRoutes
from controltower.server.prompt_routes import prompt_routes
from controltower.settings import Settings
from controltower.tracing import (
    ObservabilityStore,
    RetentionPolicy,
    RetentionSweeper,
    TraceWriter,
)
from controltower.web import web_routes

log = logging.getLogger("controltower.server")

Handler = Callable[[Scope, Receive, Send], Awaitable[None]]


class GatewayApp:
    """Dispatches by path; the proxy routes skip the framework entirely."""

    def __init__(
        self,
        settings: Settings,
        make_provider: ProviderFactory,
        store: ObservabilityStore,
        *,
        prompt_store: PromptStore | None = None,
        eval_store: EvalStore | None = None,
        key_store: KeyStore | None = None,
        on_shutdown: Callable[[], None] | None = None,
    ) -> None:
        prices = PriceTable()
        # counted in the writer's thread, once each call is priced: nothing on the hot path
        self.metrics = GatewayMetrics(alias.name for alias in settings.models)

        def enrich(record: TraceRecord) -> None:
            prices.price_record(record)
            self.metrics.observe(record)

        self.writer = TraceWriter(
            store,
            max_queue=settings.trace_queue_size,
            batch_size=settings.trace_batch_size,
            flush_interval_s=settings.trace_flush_interval_s,
            enrich=enrich,
            on_pass=self.metrics.sync_writer,
        )
        self.prompt_store = prompt_store or InMemoryPromptStore()
        # prompt references are served from memory, refreshed in the background
        renderer = PromptRenderer()  # one pool of render threads for the gateway and the API
        self.prompts = PromptResolver(self.prompt_store, settings.prompt_refresh_s, renderer)
        self.gateway = Gateway(settings, make_provider, self.writer.enqueue, self.prompts)
        # API keys are held in memory on every replica and refreshed in the background
        self.keys = KeyRing(key_store or store.key_store())
        self.auth = KeyAuth(
            settings.master_key.get_secret_value() if settings.master_key else None,
            ring=self.keys,
        )
        self._refresher: asyncio.Task[None] | None = None
        self.guard = RequestGuard(settings.allowed_hosts)
        routes = OpenAIRoutes(self.gateway, settings.max_request_bytes)
        self._post: dict[str, Handler] = {
            "/v1/chat/completions": routes.chat_completions,
            "/chat/completions": routes.chat_completions,
            "/v1/embeddings": routes.embeddings,
            "/embeddings": routes.embeddings,
        }
        self._get: dict[str, Handler] = {"/v1/models": routes.models, "/models": routes.models}
        extra = [
            *ingest_routes(self.writer, store, prices, settings.max_request_bytes),
            *prompt_routes(self.prompt_store, store, renderer),
            *key_routes(self.keys),
            # the auth is the login form's gate: key check, signed sessions, throttling
            *web_routes(store, self.prompt_store, check_key=self.auth, eval_store=eval_store),
        ]
        self._api = build_api(store, self.writer, self._metrics_text, extra)
        retention = settings.retention
        policy = RetentionPolicy(retention.days, dict(retention.projects))
        self.retention = RetentionSweeper(store, policy, retention.interval_s)
        self._on_shutdown = on_shutdown

    def _metrics_text(self) -> bytes:
        self.metrics.sync_writer(self.writer.stats, self.writer.queue_depth)
        return self.metrics.render()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            send = with_security_headers(send)
            table = self._post if scope["method"] == "POST" else self._get
            handler = table.get(scope["path"])
            try:
                self.guard.check(scope)
                principal = await self.auth.check(scope)
                if principal is not None:
                    check_access(principal, scope["method"], scope["path"])
                    scope[PRINCIPAL] = principal
            except APIError as exc:
                if exc.status == 401 and wants_page(scope):
                    await send_bytes(send, 303, b"", [(b"location", login_location(scope))])
                else:
                    await send_error(send, exc)
                return
            await (handler or self._api)(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        else:
            await self._api(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self._start_keys()
                self.writer.start()
                self.retention.start()
                self.prompts.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._stop_keys()
                self.prompts.stop()
                await self.gateway.aclose()
                self.retention.stop()
                self.writer.shutdown()
                self.metrics.close()
                if self._on_shutdown is not None:
                    self._on_shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _start_keys(self) -> None:
        """Load every key before the first request, then keep the ring fresh."""
        try:
            await asyncio.to_thread(self.keys.refresh)
        except Exception:  # the store is down: no key is known yet, the refresh retries
            self.keys.failures += 1
            log.warning("could not load the API keys; retrying in the background", exc_info=True)
        self._refresher = asyncio.create_task(self.keys.keep_fresh())

    async def _stop_keys(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        try:
            await asyncio.to_thread(self.keys.flush_used)
        except Exception:
            log.warning("could not record the API keys' last use", exc_info=True)
