"""The gateway in process: what evals (and scripts) call models through, traced like any
request, without a server.

`LocalGateway` is the gateway's own pipeline (aliases, prompt references, routing,
retries, fallbacks) with a trace writer into the store; as a `ModelClient` it answers
chat and embedding calls and says which prompt version and deployment answered each.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from controltower.cost import PriceTable
from controltower.domain import TraceRecord, new_trace_id
from controltower.errors import InvalidRequest, ModelNotFound
from controltower.evals.scoring import ModelReply
from controltower.evals.session import EvalRuntime
from controltower.gateway.caller import Caller
from controltower.gateway.context import CallContext
from controltower.gateway.http_caller import HttpTargetCaller
from controltower.gateway.prompts import PREFIX, PromptResolver, parse_reference
from controltower.gateway.service import ChatPlan, Gateway, ProviderFactory
from controltower.plugins import provider_class
from controltower.prompts import PromptRenderer, PromptStore
from controltower.providers import ChatCompletion
from controltower.settings import Deployment, Settings
from controltower.tracing import ObservabilityStore, TraceWriter

MAX_ROUTES = 100_000  # routes remembered for replies not yet read (calls in flight)


class LocalGateway:
    """A ModelClient on the gateway's pipeline, in this process."""

    def __init__(
        self,
        settings: Settings,
        make_provider: ProviderFactory,
        store: ObservabilityStore,
        *,
        prompt_store: PromptStore | None = None,
    ) -> None:
        self.prices = PriceTable()
        self.writer = TraceWriter(
            store,
            max_queue=settings.trace_queue_size,
            batch_size=settings.trace_batch_size,
            flush_interval_s=settings.trace_flush_interval_s,
            enrich=self.prices.price_record,
        )
        self.prompt_store = prompt_store or store.prompt_store()
        self.prompts = PromptResolver(
            self.prompt_store, settings.prompt_refresh_s, PromptRenderer()
        )
        self.gateway = Gateway(settings, make_provider, self._record, self.prompts)
        self._routes: dict[str, dict[str, Any]] = {}
        self._started = False

    def start(self) -> None:
        """Start the trace writer and load the prompts."""
        if not self._started:
            self.writer.start()
            self.prompts.start()
            self._started = True

    async def aclose(self) -> None:
        """Stop the gateway and write the traces still queued."""
        self.prompts.stop()
        await self.gateway.aclose()
        self.writer.shutdown()

    def _record(self, record: TraceRecord) -> None:
        route: dict[str, Any] = {}
        cost = 0.0
        for span in record.spans:
            if span.kind != "generation":
                continue
            if span.deployment and span.status == "ok":
                route.update(deployment=span.deployment, provider=span.provider, model=span.model)
            if span.prompt_name:
                route.update(prompt=span.prompt_name, prompt_version=span.prompt_version)
            if span.cost is None and span.model:
                span.cost = self.prices.cost(span)
            cost += span.cost or 0.0
        route["cost_usd"] = cost if cost else None
        if len(self._routes) < MAX_ROUTES:
            self._routes[record.trace.id] = route
        self.writer.enqueue(record)

    async def chat(
        self,
        body: dict[str, Any],
        *,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        model: str | None = None,
    ) -> ModelReply:
        """A chat completion through the pipeline (never streamed), with its trace."""
        context = CallContext(Caller(tags=list(tags or []), metadata=dict(metadata or {})))
        trace_id = context.trace_id
        started = time.perf_counter()
        body = {**body, "stream": False}
        plan = await self.gateway.plan_chat(body, context)
        if model is not None:  # a matrix over models: the prompt's body, another alias
            provider = self.gateway.routes.get(model)
            if provider is None:
                raise ModelNotFound(f"model alias `{model}` not found", param="model")
            plan = ChatPlan({**plan.body, "model": model}, provider)
        result = await self.gateway.run_chat(plan, context)
        latency = (time.perf_counter() - started) * 1000
        if not isinstance(result, ChatCompletion):  # pragma: no cover - stream is False
            raise InvalidRequest("evals read whole answers, not streams", param="stream")
        route = self._routes.pop(trace_id, {})
        cost = route.pop("cost_usd", None)
        return ModelReply(result.data, trace_id, latency, cost, route)

    async def embed(self, model: str, texts: list[str]) -> list[list[float]]:
        """Embeddings from one deployment of the alias, traced."""
        body = {"model": model, "input": texts}
        result = await self.gateway.embed(body, Caller(), new_trace_id())
        data = orjson.loads(result.body)
        return [item["embedding"] for item in sorted(data["data"], key=lambda d: d["index"])]

    async def resolve(self, model: str) -> dict[str, Any]:
        """The prompt version and deployments a `model` resolves to now."""
        if model.startswith(PREFIX):
            return self._resolve_prompt(model)
        balanced = self.gateway.balanced.get(model)
        if balanced is None:
            raise ModelNotFound(f"model alias `{model}` not found", param="model")
        return {
            "alias": model,
            "deployments": self.resolve_alias(model),
            "fallbacks": list(balanced.alias.fallbacks),
        }

    def _resolve_prompt(self, reference: str) -> dict[str, Any]:
        self.prompts.refresh()
        name, label, number = parse_reference(reference)
        version = self.prompt_store.get_version(name, version=number, label=label)
        out: dict[str, Any] = {
            "name": name,
            "label": label,
            "version": version.version,
            "content_hash": version.content_hash,
            "model": version.content.model,
        }
        if version.content.model:
            out["deployments"] = self.resolve_alias(version.content.model)
        return out

    def resolve_alias(self, model: str) -> list[dict[str, Any]]:
        """The deployments of an alias ([] for an unknown one)."""
        balanced = self.gateway.balanced.get(model)
        if balanced is None:
            return []
        return [
            {"label": d.label, "provider": d.provider, "model": d.model}
            for d in balanced.alias.deployments
        ]


def local_runtime(
    settings: Settings, store: Any, make_provider: ProviderFactory | None = None
) -> EvalRuntime:
    """An eval runtime on an in-process gateway; `store` holds traces, prompts and evals."""
    gateway = LocalGateway(settings, make_provider or _registered_provider, store)
    gateway.start()
    http = HttpTargetCaller()
    return EvalRuntime(
        gateway, store.eval_store(), http, [http.aclose, gateway.aclose], traces=store
    )


def _registered_provider(deployment: Deployment) -> Any:
    return provider_class(deployment.provider)(deployment)
