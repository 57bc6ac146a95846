"""Budgets and rate limits on the request path: reserve before the call, settle after.

`Limited` is the wrapper of an alias's chain that budgets or rate limits apply to (an
alias none can charge has no wrapper, and pays nothing). Before the chain runs it works
out the call's amounts, reserves them in every counter that applies (one atomic step of
the ledger, budgets and rate limits together), and refuses with 429 when one would be
overrun: `budget_exceeded` for a budget, `rate_limit_exceeded` for a rate limit. When
the call ends (a whole answer, a stream's last event, or an error) the actual amounts
settle the reservation; a reservation whose process died expires by itself.

A budget reserves an upper bound of the call's cost, so that spend never passes a limit:
- input tokens: the UTF-8 bytes of its messages and tools (a token is at least a byte);
- output tokens: `max_tokens` (or `max_completion_tokens`) times `n`; without them, the
  deployment's `max_output_tokens` (4,096 when unset), which a long answer can pass;
- the dearest deployment of the alias and of its fallbacks, at those tokens.
A model with no known price reserves and counts $0 (its trace's cost is null too).

A rate limit charges one request, and tokens from the request's estimate (a token per
four bytes of input, and the output asked for), corrected to the actual usage after the
call. Every answer carries OpenAI's `x-ratelimit-*` headers of the tightest limit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson

from controltower.cost import PriceTable
from controltower.domain import Usage
from controltower.errors import BudgetExceeded, BudgetsUnavailable, RateLimited
from controltower.gateway.resilience import Route
from controltower.gateway.tariffs import Pricer, Tariff
from controltower.limits import Admission, Charge, Cost, Ledger, Rule, Subject, charges_for
from controltower.limits.charges import MICRO
from controltower.limits.ledger import Refusal
from controltower.providers import ChatCompletion, ChatRequest, ChatStream, EmbeddingRequest
from controltower.providers.base import EmbeddingResult

log = logging.getLogger("controltower.gateway")
T = TypeVar("T")

HOLD_S = 900.0  # a reservation whose call never settles is released after this
_PER_MESSAGE = 8  # tokens a chat format adds per message, bounded
_BYTES_PER_TOKEN = 4  # a rate limit's estimate of input tokens


class Limits:
    """The rules of the config (budgets and rate limits), their ledger, the price table."""

    def __init__(self, rules: Sequence[Rule], ledger: Ledger, prices: PriceTable) -> None:
        self.rules = list(rules)
        self.ledger = ledger
        self.prices = prices
        self.refused = {"budget": 0, "rate": 0}  # calls refused, by kind of rule
        self.unavailable = 0  # admissions or settlements the ledger could not take
        self._pending: set[asyncio.Task[None]] = set()

    def for_alias(self, alias: str) -> list[Rule]:
        """The rules that can charge a call of this alias."""
        return [r for r in self.rules if r.applies_to_model(alias)]

    async def admit(
        self, request_id: str, rules: Sequence[Rule], subject: Subject, most: Cost
    ) -> tuple[list[Charge], Admission]:
        """Reserve the call's amounts in every counter that applies; raise 429 when one
        would be overrun (503 when the counters are unreachable and a rule fails closed)."""
        charges = charges_for(rules, subject, most)
        if not charges:
            return [], Admission()
        try:
            admission = await self.ledger.admit(request_id, charges, HOLD_S)
        except Exception as exc:
            self.unavailable += 1
            if any(c.rule.closed for c in charges):
                log.warning("limit counters unreachable; refusing the call: %s", exc)
                raise BudgetsUnavailable(
                    "The budget and rate-limit counters cannot be reached; try again shortly",
                    retry_after=1.0,
                ) from exc
            log.warning("limit counters unreachable; letting the call in: %s", exc)
            return [], Admission()
        if admission.refusal is not None:
            refusal = admission.refusal
            self.refused[refusal.charge.rule.kind] += 1
            if refusal.charge.rule.kind == "rate":
                raise _rate_limited(refusal, most)
            raise _exceeded(refusal, most)
        return charges, admission

    def settle_soon(self, request_id: str, charges: Sequence[Charge], actual: Cost) -> None:
        """Settle in the background (a stream's end runs outside any coroutine)."""
        if not charges:
            return
        task = asyncio.get_running_loop().create_task(self.settle(request_id, charges, actual))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def settle(self, request_id: str, charges: Sequence[Charge], actual: Cost) -> None:
        """Release the reservation and count the actual amounts (never raises)."""
        if not charges:
            return
        try:
            await self.ledger.settle(
                request_id, [c.with_amount(actual.amount(c.rule)) for c in charges]
            )
        except Exception:
            self.unavailable += 1
            log.warning("could not settle the reservation of %s", request_id, exc_info=True)

    async def aclose(self) -> None:
        """Wait for settlements under way, then close the ledger."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        await self.ledger.aclose()

    def cost(self, usd: float | None, usage: Usage) -> Cost:
        """What a call cost: its dollars (None: no price known) and its tokens."""
        tokens = (usage.input_tokens or 0) + (usage.output_tokens or 0)
        return Cost(None, tokens) if usd is None else Cost.of(usd, tokens)

    def most(
        self, tariffs: Sequence[Tariff], input_bytes: int, output: int | None, messages: int
    ) -> Cost:
        """The dearest cost the call can reach on any of the tariffs, and the tokens a
        rate limit charges for it."""
        input_tokens = input_bytes + _PER_MESSAGE * messages
        dearest: float | None = None
        tokens = 0
        for tariff in tariffs:
            out = tariff.max_output if output is None else output
            usage = Usage(input_tokens=input_tokens, output_tokens=out)
            usd = self.prices.usage_cost(tariff.provider, tariff.model, usage, tariff.override)
            if usd is not None and (dearest is None or usd > dearest):
                dearest = usd
            tokens = max(tokens, input_tokens + out)
        estimate = -(-input_bytes // _BYTES_PER_TOKEN) + messages + (output or 0)
        return Cost.of(dearest, tokens, estimate)


class Limited:
    """An alias's chain behind its budgets and rate limits (the `limited` wrapper)."""

    def __init__(
        self,
        inner: Route,
        alias: str,
        limits: Limits,
        rules: Sequence[Rule],
        pricer: Pricer,
    ) -> None:
        self.inner = inner
        self.alias = alias
        self.limits = limits
        self.rules = list(rules)
        self.pricer = pricer  # the tariffs of the alias and of its fallbacks
        self._all = pricer.all

    async def chat(self, request: ChatRequest) -> ChatCompletion | ChatStream:
        """Reserve, call the chain, and settle when the answer (or its stream) ends."""
        body = request.body
        choices = body.get("n")
        n = choices if isinstance(choices, int) and choices > 0 else 1
        output = _max_tokens(body)
        messages = body.get("messages")
        most = self.limits.most(
            self._all, _input_bytes(messages, body.get("tools")),
            None if output is None else output * n,
            len(messages) if isinstance(messages, list) else 1,
        )  # fmt: skip
        request_id, charges, result = await self._held(request, most, self.inner.chat)
        if isinstance(result, ChatCompletion):
            self.limits.settle_soon(request_id, charges, self._actual(request, result.usage))
            return result
        summary = result.summary

        def ended(_error: BaseException | None) -> None:
            self.limits.settle_soon(request_id, charges, self._actual(request, summary.usage))

        result.on_end(ended)
        return result

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        """Reserve, embed, settle."""
        inputs = request.body.get("input")
        count = len(inputs) if isinstance(inputs, list) else 1
        most = self.limits.most(self._all, _input_bytes(inputs, None), 0, count)
        request_id, charges, result = await self._held(request, most, self.inner.embed)
        self.limits.settle_soon(request_id, charges, self._actual(request, result.usage))
        return result

    async def _held(
        self, request: Any, most: Cost, call: Callable[[Any], Awaitable[T]]
    ) -> tuple[str, list[Charge], T]:
        """Reserve, then make the call; a call that fails releases what it reserved."""
        request_id, charges = await self._admit(request, most)
        try:
            result = await call(request)
        except BaseException:
            # what a failed attempt billed is unknown: the reservation is released, and
            # the request still counts against request rates
            failed = Cost(0, 0, 0)
            await self.limits.settle(request_id, charges, failed)
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
        try:
            charges, admission = await self.limits.admit(request_id, self.rules, subject, most)
        except RateLimited as exc:
            _answer_headers(context, exc.headers_for_limits)
            raise
        _answer_headers(context, rate_headers(charges, admission, time.time()))
        usd = most.micro_usd
        if usd and hasattr(context, "reserved_usd") and any(c.unit == "usd" for c in charges):
            context.reserved_usd = usd / MICRO
        return request_id, charges

    def _actual(self, request: ChatRequest | EmbeddingRequest, usage: Usage) -> Cost:
        return self.limits.cost(self.pricer.cost(request, usage), usage)


def rate_headers(
    charges: Sequence[Charge], admission: Admission, now: float
) -> list[tuple[bytes, bytes]]:
    """OpenAI's `x-ratelimit-*` headers: per unit (requests, tokens), the rate limit with
    the least room left after this call."""
    if not admission.used:
        return []
    tightest: dict[str, tuple[int, Charge, float | None]] = {}
    for charge, used, frees in zip(charges, admission.used, admission.frees_at, strict=True):
        if charge.rule.kind != "rate" or charge.unit not in ("requests", "tokens"):
            continue
        left = max(0, charge.limit - used - charge.amount)
        if charge.unit not in tightest or left < tightest[charge.unit][0]:
            tightest[charge.unit] = (left, charge, frees)
    headers = []
    for unit, (left, charge, frees) in tightest.items():
        window = charge.slot_s * charge.slots
        reset = window if frees is None else max(0.0, frees - now)
        headers += [
            (f"x-ratelimit-limit-{unit}".encode(), str(charge.limit).encode()),
            (f"x-ratelimit-remaining-{unit}".encode(), str(left).encode()),
            (f"x-ratelimit-reset-{unit}".encode(), _duration(reset).encode()),
        ]
    return headers


def _answer_headers(context: Any, headers: list[tuple[bytes, bytes]]) -> None:
    if headers and context is not None and hasattr(context, "headers"):
        context.headers.extend(headers)


def _duration(seconds: float) -> str:
    """As OpenAI writes a reset time: `1s`, `6m0s`, `2h30m0s`."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def _max_tokens(body: dict[str, Any]) -> int | None:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


def _input_bytes(messages: Any, tools: Any) -> int:
    """The UTF-8 bytes of the input's text (a token is at least a byte), other content as
    JSON, and the tools' JSON."""
    items = messages if isinstance(messages, list) else [messages]
    size = sum(_size(item.get("content") if isinstance(item, dict) else item) for item in items)
    size += sum(
        _size({k: v for k, v in item.items() if k != "content"})
        for item in items
        if isinstance(item, dict) and len(item) > 2  # tool calls, names
    )
    if tools is not None:
        size += _size(tools)
    return size


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
            f"${v / MICRO:.4f}" for v in (charge.limit, refusal.used, most.amount(charge.rule))
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
        "requested": most.amount(charge.rule) / MICRO if charge.unit == "usd" else most.tokens,
        "resets_at": resets,
    }
    return BudgetExceeded(message, budget=budget, retry_after=retry)


def _rate_limited(refusal: Refusal, most: Cost) -> RateLimited:
    charge = refusal.charge
    now = time.time()
    wait = None if refusal.frees_at is None else max(1.0, refusal.frees_at - now)
    per = "minute" if charge.rule.window == "minute" else "day"
    message = (
        f"Rate limit {charge.budget!r} ({charge.scope} {charge.value!r}): "
        f"{refusal.used} of {charge.limit} {charge.unit} per {per} used, and this call "
        f"needs {most.amount(charge.rule)}" + ("" if wait is None else f"; retry in {wait:.0f} s")
    )
    error = RateLimited(message, retry_after=wait)
    window = charge.slot_s * charge.slots
    reset = window if refusal.frees_at is None else max(0.0, refusal.frees_at - now)
    error.headers_for_limits = [
        (f"x-ratelimit-limit-{charge.unit}".encode(), str(charge.limit).encode()),
        (f"x-ratelimit-remaining-{charge.unit}".encode(), b"0"),
        (f"x-ratelimit-reset-{charge.unit}".encode(), _duration(reset).encode()),
    ]
    return error
