"""Budgets on the request path: reserve a call's most cost before it runs, settle after.

`Limited` is the wrapper of an alias's chain that budgets apply to (an alias no budget
can charge has none, and pays nothing). Before the chain runs it works out the call's
most cost, reserves it in every budget's counter that applies (one atomic step of the
ledger), and refuses with 429 `budget_exceeded` when one would overrun. When the call
ends (a whole answer, a stream's last event, or an error) the actual cost settles the
reservation; a reservation whose process died expires by itself.

The most cost of a call is an upper bound, so that spend never passes a limit:
- input tokens: the UTF-8 bytes of its messages and tools (a token is at least a byte);
- output tokens: `max_tokens` (or `max_completion_tokens`) times `n`; without them, the
  deployment's `max_output_tokens` (4,096 when unset), which a long answer can pass;
- the dearest deployment of the alias and of its fallbacks, at those tokens.
A model with no known price reserves and counts $0 (its trace's cost is null too).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson

from controltower.cost import PriceTable
from controltower.domain import Span, Usage
from controltower.errors import BudgetExceeded, BudgetsUnavailable
from controltower.gateway.resilience import Route
from controltower.limits import Charge, Cost, Ledger, Refusal, Subject, charges_for
from controltower.limits.charges import MICRO, applies_to_model
from controltower.providers import ChatCompletion, ChatRequest, ChatStream, EmbeddingRequest
from controltower.providers.base import EmbeddingResult
from controltower.settings import Budget, Deployment

log = logging.getLogger("controltower.gateway")
T = TypeVar("T")

DEFAULT_OUTPUT_TOKENS = 4096
HOLD_S = 900.0  # a reservation whose call never settles is released after this
_PER_MESSAGE = 8  # tokens a chat format adds per message, bounded


@dataclass(frozen=True, slots=True)
class Tariff:
    """What one deployment charges: its provider, model and prices (config or table)."""

    provider: str
    model: str
    override: tuple[float, float, float | None] | None
    max_output: int


class Budgets:
    """The budgets of the config, the ledger that counts them, and the price table."""

    def __init__(self, budgets: Sequence[Budget], ledger: Ledger, prices: PriceTable) -> None:
        self.budgets = list(budgets)
        self.ledger = ledger
        self.prices = prices
        self.refused = 0  # calls refused over a budget
        self.unavailable = 0  # admissions or settlements the ledger could not take
        self._pending: set[asyncio.Task[None]] = set()

    def for_alias(self, alias: str) -> list[Budget]:
        """The budgets that can charge a call of this alias."""
        return [b for b in self.budgets if applies_to_model(b, alias)]

    async def admit(
        self, request_id: str, budgets: Sequence[Budget], subject: Subject, most: Cost
    ) -> list[Charge]:
        """Reserve the call's most cost in every counter that applies; raise
        BudgetExceeded (429) when one would overrun."""
        charges = charges_for(budgets, subject, most)
        if not charges:
            return []
        try:
            refusal = await self.ledger.admit(request_id, charges, HOLD_S)
        except Exception as exc:
            self.unavailable += 1
            if any(b.redis_down == "closed" for b in budgets):
                log.warning("budget counters unreachable; refusing the call: %s", exc)
                raise BudgetsUnavailable(
                    "The budget counters cannot be reached; try again shortly",
                    retry_after=1.0,
                ) from exc
            log.warning("budget counters unreachable; letting the call in: %s", exc)
            return []
        if refusal is not None:
            self.refused += 1
            raise _exceeded(refusal, most)
        return charges

    def settle_soon(self, request_id: str, charges: Sequence[Charge], actual: Cost) -> None:
        """Settle in the background (a stream's end runs outside any coroutine)."""
        if not charges:
            return
        task = asyncio.get_running_loop().create_task(self.settle(request_id, charges, actual))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def settle(self, request_id: str, charges: Sequence[Charge], actual: Cost) -> None:
        """Release the reservation and count the actual cost (never raises)."""
        try:
            await self.ledger.settle(
                request_id, [c.with_amount(actual.amount(c.unit)) for c in charges]
            )
        except Exception:
            self.unavailable += 1
            log.warning("could not settle budget reservation %s", request_id, exc_info=True)

    async def aclose(self) -> None:
        """Wait for settlements under way, then close the ledger."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        await self.ledger.aclose()

    def cost(self, tariff: Tariff | None, usage: Usage) -> Cost:
        """What a call cost, at the tariff of the deployment that answered."""
        tokens = (usage.input_tokens or 0) + (usage.output_tokens or 0)
        if tariff is None:
            return Cost(None, tokens)
        usd = self.prices.usage_cost(tariff.provider, tariff.model, usage, tariff.override)
        return Cost.of(usd, tokens)

    def most(self, tariffs: Sequence[Tariff], input_tokens: int, output: int | None) -> Cost:
        """The dearest cost the call can reach on any of the tariffs."""
        dearest: float | None = None
        tokens = 0
        for tariff in tariffs:
            out = tariff.max_output if output is None else output
            usage = Usage(input_tokens=input_tokens, output_tokens=out)
            usd = self.prices.usage_cost(tariff.provider, tariff.model, usage, tariff.override)
            if usd is not None and (dearest is None or usd > dearest):
                dearest = usd
            tokens = max(tokens, input_tokens + out)
        return Cost.of(dearest, tokens)


class Limited:
    """An alias's chain behind its budgets (the `limited` wrapper)."""

    def __init__(
        self,
        inner: Route,
        alias: str,
        budgets: Budgets,
        applicable: Sequence[Budget],
        tariffs: dict[str, Tariff],
    ) -> None:
        self.inner = inner
        self.alias = alias
        self.budgets = budgets
        self.applicable = list(applicable)
        self.tariffs = tariffs  # deployment label -> tariff, of the alias and its fallbacks
        self._all = list(tariffs.values())

    async def chat(self, request: ChatRequest) -> ChatCompletion | ChatStream:
        """Reserve, call the chain, and settle when the answer (or its stream) ends."""
        body = request.body
        choices = body.get("n")
        n = choices if isinstance(choices, int) and choices > 0 else 1
        output = _max_tokens(body)
        most = self.budgets.most(
            self._all, _input_bound(body.get("messages"), body.get("tools")),
            None if output is None else output * n,
        )  # fmt: skip
        request_id, charges, result = await self._held(request, most, self.inner.chat)
        if isinstance(result, ChatCompletion):
            self.budgets.settle_soon(request_id, charges, self._actual(request, result.usage))
            return result
        summary = result.summary

        def ended(_error: BaseException | None) -> None:
            self.budgets.settle_soon(request_id, charges, self._actual(request, summary.usage))

        result.on_end(ended)
        return result

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        """Reserve, embed, settle."""
        most = self.budgets.most(self._all, _input_bound(request.body.get("input"), None), 0)
        request_id, charges, result = await self._held(request, most, self.inner.embed)
        self.budgets.settle_soon(request_id, charges, self._actual(request, result.usage))
        return result

    async def _held(
        self, request: Any, most: Cost, call: Callable[[Any], Awaitable[T]]
    ) -> tuple[str, list[Charge], T]:
        """Reserve, then make the call; a call that fails releases what it reserved."""
        request_id, charges = await self._admit(request, most)
        try:
            result = await call(request)
        except BaseException:
            # what a failed attempt billed is unknown: the reservation is released
            await self.budgets.settle(request_id, charges, self._actual(request, Usage()))
            raise
        return request_id, charges, result

    async def _admit(
        self, request: ChatRequest | EmbeddingRequest, most: Cost
    ) -> tuple[str, list[Charge]]:
        context = request.context
        trace = request.trace
        request_id = f"{trace.trace_id}:{trace.parent_id}" if trace else _fresh_id()
        subject = Subject(
            getattr(context, "project", "default"),
            getattr(context, "key_id", None),
            _user(context, request.body),
            self.alias,
            tuple(getattr(getattr(context, "caller", None), "tags", None) or ()),
        )
        return request_id, await self.budgets.admit(request_id, self.applicable, subject, most)

    def _actual(self, request: ChatRequest | EmbeddingRequest, usage: Usage) -> Cost:
        spans = request.trace.spans if request.trace else []
        used = next((s for s in reversed(spans) if s.status == "ok"), spans[-1] if spans else None)
        tariff = self.tariffs.get(used.deployment or "") if isinstance(used, Span) else None
        if tariff is None and len(self._all) == 1:
            tariff = self._all[0]
        return self.budgets.cost(tariff, usage)


def tariff_of(deployment: Deployment) -> Tariff:
    """A deployment's tariff, from its config."""
    price = deployment.price
    override = None if price is None else (price.input, price.output, price.cached_input)
    return Tariff(
        deployment.provider,
        deployment.model,
        override,
        deployment.max_output_tokens or DEFAULT_OUTPUT_TOKENS,
    )


def _max_tokens(body: dict[str, Any]) -> int | None:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


def _input_bound(messages: Any, tools: Any) -> int:
    """At least the input's token count: the UTF-8 bytes of its text (a token is at least
    a byte), other content as JSON, the tools' JSON, and a few tokens per message."""
    items = messages if isinstance(messages, list) else [messages]
    size = sum(_size(item.get("content") if isinstance(item, dict) else item) for item in items)
    size += sum(
        _size({k: v for k, v in item.items() if k != "content"})
        for item in items
        if isinstance(item, dict) and len(item) > 2  # tool calls, names
    )
    if tools is not None:
        size += _size(tools)
    return size + _PER_MESSAGE * len(items)


def _size(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass"))
    if value is None:
        return 0
    if isinstance(value, list):  # content parts: their text, and the rest as JSON
        return sum(
            _size(p.get("text") if isinstance(p, dict) and "text" in p else p) for p in value
        )
    return len(orjson.dumps(value, default=str))


def _user(context: Any, body: dict[str, Any]) -> str | None:
    caller = getattr(context, "caller", None)
    user = getattr(caller, "user_id", None) or body.get("user")
    return user if isinstance(user, str) and user else None


def _fresh_id() -> str:
    from controltower.domain import new_span_id

    return new_span_id() + new_span_id()


def _exceeded(refusal: Refusal, most: Cost) -> BudgetExceeded:
    charge = refusal.charge
    resets = None
    if refusal.frees_at is not None:
        resets = datetime.fromtimestamp(refusal.frees_at, UTC).isoformat(timespec="seconds")
    if charge.unit == "usd":
        limit, used, ask = (
            f"${v / MICRO:.4f}" for v in (charge.limit, refusal.used, most.amount("usd"))
        )
    else:
        limit, used, ask = (f"{v} tokens" for v in (charge.limit, refusal.used, most.tokens))
    window = f"; the window frees up from {resets}" if resets else ""
    message = (
        f"Budget {charge.budget!r} ({charge.scope} {charge.value!r}) is spent: {used} of {limit} "
        f"used or reserved, and this call may cost up to {ask}{window}"
    )
    retry = None
    if refusal.frees_at is not None:
        retry = max(1.0, refusal.frees_at - datetime.now(UTC).timestamp())
    budget = {
        "name": charge.budget,
        "scope": charge.scope,
        "value": charge.value,
        "unit": charge.unit,
        "limit": charge.limit / MICRO if charge.unit == "usd" else charge.limit,
        "used": refusal.used / MICRO if charge.unit == "usd" else refusal.used,
        "requested": most.amount("usd") / MICRO if charge.unit == "usd" else most.tokens,
        "resets_at": resets,
    }
    return BudgetExceeded(message, budget=budget, retry_after=retry)
