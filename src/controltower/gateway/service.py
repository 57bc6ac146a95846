"""The gateway service: one call from an OpenAI-format body to an answer and a trace."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from controltower.cache import AnswerCache, MemoryAnswerCache
from controltower.cost import PriceTable
from controltower.cost.prices import Prices
from controltower.domain import (
    Billing,
    CallTrace,
    Span,
    SpanKind,
    Trace,
    TraceRecord,
    Usage,
    new_span_id,
    now_us,
)
from controltower.errors import APIError, ModelNotFound
from controltower.gateway.cached import Cached, CacheStats
from controltower.gateway.caller import Caller
from controltower.gateway.context import CallContext
from controltower.gateway.limited import Limited, Limits
from controltower.gateway.prompts import PREFIX, PromptResolver, PromptUse
from controltower.gateway.resilience import Backoff, Fallback, Retrying, Route
from controltower.gateway.router import BalancedAlias, DeploymentState
from controltower.gateway.tariffs import Pricer, tariff_of
from controltower.limits import Ledger, MemoryLedger, rules_of
from controltower.providers import ChatCompletion, ChatRequest, ChatStream, EmbeddingRequest
from controltower.providers.base import EmbeddingResult, StreamSummary
from controltower.settings import Deployment, Settings

log = logging.getLogger("controltower.gateway")

ProviderFactory = Callable[[Deployment], Any]
RecordSink = Callable[[TraceRecord], object]

# request fields that are not model parameters
_NOT_PARAMETERS = frozenset({"messages", "model", "stream_options", "input"})


# the longest `model` a refused request's trace is named with
_MAX_NAME = 200


@dataclass(frozen=True, slots=True)
class ChatPlan:
    """A chat body resolved to the route that answers it (the prompt it came from, if
    any, is in the call's context)."""

    body: dict[str, Any]
    route: Route


class Gateway:
    """Serves model aliases from settings; records every call through `record`."""

    def __init__(
        self,
        settings: Settings,
        make_provider: ProviderFactory,
        record: RecordSink,
        prompts: PromptResolver | None = None,
        *,
        ledger: Ledger | None = None,
        cache: AnswerCache | None = None,
    ):
        self._record = record
        self.prompts = prompts
        self.balanced: dict[str, BalancedAlias] = {}
        self._prices: dict[str, Prices] = {}
        for alias in settings.models:
            states = [DeploymentState(d, make_provider(d), alias) for d in alias.deployments]
            self.balanced[alias.name] = BalancedAlias(alias, states)
            for d in alias.deployments:
                if d.price is not None:
                    self._prices[d.label] = (d.price.input, d.price.output, d.price.cached_input)
        backoff = Backoff(
            settings.backoff_base_s, settings.backoff_max_s, settings.max_retry_after_s
        )
        # each alias's chain, built once: fallback over (alias, *fallbacks), each retrying
        # its balancer; chat and embeddings go down the same chain
        self.routes: dict[str, Route] = {}
        for alias in settings.models:
            chain = [self._retrying(name, backoff) for name in (alias.name, *alias.fallbacks)]
            self.routes[alias.name] = chain[0] if len(chain) == 1 else Fallback(chain)
        prices = PriceTable()
        pricers = {alias.name: self._pricer(alias.name, prices) for alias in settings.models}
        # an alias with a cache TTL answers from its cache before its chain
        self.cache_stats = CacheStats()
        self._cached: list[Cached] = []
        self.cache: AnswerCache | None = None
        for alias in settings.models:
            if alias.cache is not None:
                if self.cache is None:
                    self.cache = cache or _answer_cache(settings)
                cached = Cached(
                    self.routes[alias.name],
                    alias.name,
                    self.cache,
                    alias.cache.ttl_s,
                    pricers[alias.name],
                    self.cache_stats,
                )
                self._cached.append(cached)
                self.routes[alias.name] = cached
        # budgets and rate limits wrap the chains they can charge; with none, none is
        self.limits: Limits | None = None
        rules = rules_of(settings.budgets, settings.rate_limits)
        if rules:
            self.limits = Limits(rules, ledger or _ledger(settings), prices)
            for alias in settings.models:
                applicable = self.limits.for_alias(alias.name)
                if applicable:
                    inner = self.routes[alias.name]
                    self.routes[alias.name] = Limited(
                        inner, alias.name, self.limits, applicable, pricers[alias.name]
                    )

    def _pricer(self, name: str, prices: PriceTable) -> Pricer:
        """The tariffs of an alias's deployments and of its fallbacks'."""
        alias = self.balanced[name].alias
        tariffs = {
            d.label: tariff_of(d)
            for each in (alias.name, *alias.fallbacks)
            for d in self.balanced[each].alias.deployments
        }
        return Pricer(prices, tariffs)

    def _retrying(self, name: str, backoff: Backoff) -> Route:
        balanced = self.balanced[name]
        if balanced.alias.retries == 0:
            return balanced
        return Retrying(balanced, balanced.alias.retries, backoff, balanced.ready_in)

    def model_ids(self) -> list[str]:
        """The aliases clients may send as `model`."""
        return list(self.routes)

    async def chat(
        self, body: dict[str, Any], caller: Caller, trace_id: str | None = None
    ) -> ChatCompletion | ChatStream:
        """Answer a chat completion body; a stream is traced when it ends."""
        context = CallContext.of(caller, trace_id)
        return await self.run_chat(await self.plan_chat(body, context), context)

    async def plan_chat(self, body: dict[str, Any], context: CallContext) -> ChatPlan:
        """The route for a body's model alias or prompt reference (rendered off the loop);
        a prompt reference's version goes into the context.

        Raises the APIError of a body no provider can be called for; records nothing
        (see `record_refusal`).
        """
        route = self.routes.get(body["model"])
        if route is not None:
            return ChatPlan(body, route)
        # only a name that is no alias pays for the prompt check
        resolved, context.prompt = await self._resolve_prompt(body, context.caller)
        return ChatPlan(resolved, self.routes[resolved["model"]])

    async def run_chat(self, plan: ChatPlan, context: CallContext) -> ChatCompletion | ChatStream:
        """Call the providers for a planned body, and record the call's trace."""
        body = plan.body
        stream = bool(body.get("stream"))
        options = body.get("stream_options")
        wants_usage = stream and isinstance(options, dict) and bool(options.get("include_usage"))
        call = _Call(context, body, self._prices)
        # the timeout is set per attempt, from the deployment that takes it
        request = ChatRequest(
            body, client_wants_usage=wants_usage, trace=call.trace, context=context
        )
        try:
            result = await plan.route.chat(request)
        except APIError as exc:
            self._record(call.finish(None, Usage(), error=exc))
            raise
        except Exception as exc:  # a bug (a provider's or ours): recorded, answered as a 500
            error = _internal(exc, call.trace.trace_id)
            self._record(call.finish(None, Usage(), error=error))
            raise error from exc
        if isinstance(result, ChatCompletion):
            output = [c.get("message") for c in result.data.get("choices") or ()]
            call.model = result.model
            self._record(call.finish(_one(output), result.usage))
            return result
        call.ttft_us = now_us() - call.start_us
        result.on_end(partial(self._stream_ended, result.summary, call))
        return result

    def record_refusal(
        self,
        context: CallContext,
        body: dict[str, Any] | None,
        error: APIError,
        kind: SpanKind = "generation",
    ) -> None:
        """Record a request refused before any provider was called, as an error trace."""
        body = dict(body or {})
        model = body.get("model")
        if not isinstance(model, str) or len(model) > _MAX_NAME:
            body["model"] = None if model is None else repr(model)[:_MAX_NAME]
        call = _Call(context, body, self._prices, kind=kind)
        record = call.finish(None, Usage(), error=error)
        record.billing = None  # no model was called: nothing to bill
        self._record(record)

    def _stream_ended(
        self, summary: StreamSummary, call: _Call, error: BaseException | None
    ) -> None:
        """Record a stream's trace once it ended (decoded later, by the trace writer)."""
        record = call.finish(None, Usage(), error=error)
        record.deferred = partial(_fill_from_stream, summary)
        self._record(record)

    async def embed(
        self, body: dict[str, Any], caller: Caller, trace_id: str | None = None
    ) -> EmbeddingResult:
        """Answer an embeddings body through the alias's chain."""
        context = CallContext.of(caller, trace_id)
        return await self.run_embedding(self.plan_embedding(body), body, context)

    def plan_embedding(self, body: dict[str, Any]) -> Route:
        """The chain of a body's model alias; ModelNotFound (recording nothing) if none."""
        route = self.routes.get(body["model"])
        if route is None:
            raise self._unknown(body["model"])
        return route

    async def run_embedding(
        self, route: Route, body: dict[str, Any], context: CallContext
    ) -> EmbeddingResult:
        """Send the body down the alias's chain (retries, fallbacks, breakers), and record
        the call's trace."""
        call = _Call(context, body, self._prices, kind="embedding")
        try:
            result = await route.embed(EmbeddingRequest(body, trace=call.trace, context=context))
        except APIError as exc:
            self._record(call.finish(None, Usage(), error=exc))
            raise
        except Exception as exc:  # a bug (a provider's or ours): recorded, answered as a 500
            error = _internal(exc, context.trace_id)
            self._record(call.finish(None, Usage(), error=error))
            raise error from exc
        call.model = result.model
        self._record(call.finish(None, result.usage))
        return result

    async def _resolve_prompt(
        self, body: dict[str, Any], caller: Caller
    ) -> tuple[dict[str, Any], PromptUse]:
        alias = body["model"]
        if self.prompts is None or not isinstance(alias, str) or not alias.startswith(PREFIX):
            raise self._unknown(alias)
        resolved, prompt = await self.prompts.resolve_async(body, caller)
        if resolved["model"] not in self.routes:
            raise ModelNotFound(
                f"prompt `{prompt.name}` version {prompt.version} calls the model "
                f"{resolved['model']!r}, which does not exist on this gateway; "
                f"use one of {sorted(self.routes)}",
                param="model",
            )
        return resolved, prompt

    def _unknown(self, alias: object) -> ModelNotFound:
        return ModelNotFound(
            f"The model {alias!r} does not exist on this gateway; use one of {sorted(self.routes)}",
            param="model",
        )

    async def aclose(self) -> None:
        """Close every provider's connections (and the budgets' ledger)."""
        if self.limits is not None:
            await self.limits.aclose()
        for cached in self._cached:
            await cached.aclose()
        if self.cache is not None:
            await self.cache.aclose()
        for balanced in self.balanced.values():
            for state in balanced.states:
                aclose = getattr(state.provider, "aclose", None)
                if aclose is not None:
                    await aclose()


def _answer_cache(settings: Settings) -> AnswerCache:
    """Cached answers in Redis when the cache's backend says so (shared by every
    replica), else in this process."""
    if settings.cache.backend == "redis" and settings.redis_url:
        from controltower.cache.store import RedisAnswerCache

        return RedisAnswerCache(settings.redis_url)
    return MemoryAnswerCache(settings.cache.max_entries)


def _ledger(settings: Settings) -> Ledger:
    """Budget and rate-limit counters in Redis when `redis_url` is set (shared by every
    replica), else in this process."""
    if settings.redis_url:
        from controltower.limits.redis_ledger import RedisLedger

        return RedisLedger(settings.redis_url)
    return MemoryLedger()


class _Call:
    """The trace of one gateway call while it is under way."""

    __slots__ = (
        "body",
        "context",
        "kind",
        "model",
        "prices",
        "start_us",
        "trace",
        "ttft_us",
    )

    def __init__(
        self,
        context: CallContext,
        body: dict[str, Any],
        prices: dict[str, Prices],
        kind: SpanKind = "generation",
    ) -> None:
        self.body = body
        self.context = context
        self.prices = prices
        self.kind = kind
        self.start_us = now_us()
        self.trace = CallTrace(context.trace_id, new_span_id())
        self.model: str | None = None
        self.ttft_us: int | None = None

    def finish(
        self,
        output: Any,
        usage: Usage,
        *,
        error: BaseException | None = None,
    ) -> TraceRecord:
        """The finished trace: a root span for the call and the attempts under it."""
        end = now_us()
        body = self.body
        used = _last_ok(self.trace.spans)
        caller = self.context.caller
        inputs = body.get("messages") if self.kind == "generation" else body.get("input")
        alias = body.get("model") or "(no model)"  # a refused body may have none
        root = Span(
            id=self.trace.parent_id,
            trace_id=self.trace.trace_id,
            parent_id=caller.parent_span_id,
            kind=self.kind,
            name=f"{'chat' if self.kind == 'generation' else 'embeddings'} {alias}",
            start_us=self.start_us,
            end_us=end,
            input=inputs,
            output=output,
            model=self.model or (used.model if used else None),
            provider=used.provider if used else None,
            deployment=used.deployment if used else None,
            parameters={k: v for k, v in body.items() if k not in _NOT_PARAMETERS},
            usage=usage,
            ttft_us=self.ttft_us,
            price_override=self.prices.get(used.deployment or "") if used else None,
            attributes={"model_alias": body.get("model"), "attempts": len(self.trace.spans)},
        )
        context = self.context
        if context.key_id is not None:
            root.attributes["api_key"] = context.key_id  # for spend by key
        cache = context.cache
        if cache is not None:
            root.attributes["cache"] = cache.status
            if cache.status == "HIT":
                root.cost = 0.0  # a cache hit bills nothing, whatever the model's price
                root.attributes["cache_saved_usd"] = cache.saved_usd
                root.attributes["cache_saved_tokens"] = cache.saved_tokens
        if error is not None:
            root.status = "error"
            root.error = _describe(error)
            root.attributes["error_code"] = _error_code(error)
        metadata = caller.metadata
        prompt = self.context.prompt
        if prompt is not None:
            metadata = _mark_prompt(root, prompt, metadata)
        trace = Trace(
            id=self.trace.trace_id,
            project=self.context.project,
            name=root.name,
            start_us=self.start_us,
            end_us=end,
            user_id=caller.user_id or _str_or_none(body.get("user")),
            session_id=caller.session_id,
            tags=caller.tags,
            metadata=metadata,
            input=inputs,
            output=output,
            status=root.status,
        )
        # inside a caller's trace, this call is one piece of it, merged into the rest
        partial = caller.parent_span_id is not None
        billing = _billing(alias, context)
        attempts = self.trace.spans
        one_good = len(attempts) == 1 and attempts[0].status == "ok"
        spans = [root] if one_good else [root, *attempts]  # one good attempt: the root says it
        return TraceRecord(trace, spans, partial=partial, billing=billing, gateway_call=True)


def _billing(alias: str, context: CallContext) -> Billing:
    """The call's spend entry: billed by a provider, or served by the cache for $0."""
    cache = context.cache
    if cache is not None and cache.status == "HIT":
        return Billing(
            alias,
            context.key_id,
            "cache",
            context.reserved_usd,
            cache.saved_usd,
            cache.saved_tokens,
        )
    return Billing(alias, context.key_id, reserved=context.reserved_usd)


def _mark_prompt(root: Span, prompt: PromptUse, metadata: dict[str, Any]) -> dict[str, Any]:
    """Name the prompt version on the root span; the trace's metadata with it."""
    root.prompt_name, root.prompt_version = prompt.name, prompt.version
    root.name = f"chat {prompt.reference}"
    root.attributes["prompt"] = prompt.reference
    root.attributes["prompt_variables"] = prompt.variables
    if prompt.label is not None:
        root.attributes["prompt_label"] = prompt.label
    return {**metadata, "prompt_name": prompt.name, "prompt_version": prompt.version}


def _fill_from_stream(summary: StreamSummary, record: TraceRecord) -> None:
    """Decode what a stream said into its trace (run by the trace writer, off the loop)."""
    output = _one([c["message"] for c in summary.output()])
    root = record.spans[0]
    root.output = record.trace.output = output
    root.usage = summary.usage
    root.model = summary.model or root.model
    if summary.malformed:
        root.attributes["malformed_events"] = summary.malformed


def _internal(exc: Exception, trace_id: str) -> APIError:
    log.exception("the gateway failed on a request (trace %s)", trace_id)
    return APIError(
        f"The gateway failed on this request ({type(exc).__name__}); trace {trace_id} records it"
    )


def _last_ok(spans: list[Span]) -> Span | None:
    for span in reversed(spans):
        if span.status == "ok":
            return span
    return spans[-1] if spans else None


def _one(output: list[Any]) -> Any:
    return output[0] if len(output) == 1 else output


def _error_code(error: BaseException) -> str:
    """The error's OpenAI code (`budget_exceeded`, `upstream_timeout`, ...), for metrics
    and trace filters; `client_disconnected` for a stream cut short."""
    if isinstance(error, APIError):
        return error.code or error.type
    if isinstance(error, GeneratorExit | asyncio.CancelledError):
        return "client_disconnected"
    return "internal_error"


def _describe(error: BaseException) -> str:
    if isinstance(error, APIError):
        return f"{type(error).__name__}: {error.message}"
    if isinstance(error, GeneratorExit | asyncio.CancelledError):
        return "the stream was cut short: the client disconnected or the gateway stopped"
    return f"{type(error).__name__}: {error}"


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
