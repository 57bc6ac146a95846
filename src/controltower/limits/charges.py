"""What one call is charged, in which counters: budgets and rate limits turned into rules,
and rules into integer amounts.

Money is counted in micro-dollars, tokens and requests as whole numbers, so that counters
kept by many replicas add up exactly. A rule over a rolling window counts in slots (a
minute in 60 one-second slots, an hour in 60 minutes, a day in 96 quarter hours, a week
in 168 hours, a month of 30 days in 120 six-hour slots): what was counted more than a
window ago, to the slot, no longer counts.

A budget reserves a call's most cost (an upper bound: spend never passes its limit); a
rate limit reserves the call's estimate (tokens of a request whose answer is not known
yet), and both are corrected to the actual amount after the call.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from controltower.settings import Budget, RateLimit

Unit = Literal["usd", "tokens", "requests"]
Kind = Literal["budget", "rate"]
MICRO = 1_000_000  # micro-dollars in a dollar
# window -> (seconds per slot, slots per window); `total` is one slot that never ends
WINDOWS: dict[str, tuple[int, int]] = {
    "total": (0, 1),
    "minute": (1, 60),
    "hour": (60, 60),
    "day": (900, 96),
    "week": (3600, 168),
    "month": (21600, 120),
}


@dataclass(frozen=True, slots=True)
class Rule:
    """One limit on one unit over one window, for one scope's value or each of them."""

    label: str  # the budget's or rate limit's name
    kind: Kind
    scope: str
    match: str
    unit: Unit
    limit: int  # micro-dollars, tokens or requests
    window: str
    closed: bool  # refuse calls when the shared counters are unreachable

    def applies_to_model(self, alias: str) -> bool:
        """Whether the rule can charge calls of this alias (model rules name theirs)."""
        return self.scope != "model" or self.match in ("*", alias)


def rules_of(budgets: Sequence[Budget], rate_limits: Sequence[RateLimit]) -> list[Rule]:
    """Every rule of the config's budgets and rate limits."""
    rules: list[Rule] = []
    for b in budgets:
        closed = b.redis_down == "closed"
        if b.usd is not None:
            usd = round(b.usd * MICRO)
            rules.append(Rule(b.label, "budget", b.scope, b.match, "usd", usd, b.window, closed))
        if b.tokens is not None:
            rules.append(
                Rule(b.label, "budget", b.scope, b.match, "tokens", b.tokens, b.window, closed)
            )
    for r in rate_limits:
        closed = r.redis_down == "closed"
        for unit, limit, window in (
            ("requests", r.rpm, "minute"), ("tokens", r.tpm, "minute"),
            ("requests", r.rpd, "day"), ("tokens", r.tpd, "day"),
        ):  # fmt: skip
            if limit is not None:
                rules.append(
                    Rule(r.label, "rate", r.scope, r.match, unit, limit, window, closed)  # type: ignore[arg-type]
                )
    return rules


@dataclass(frozen=True, slots=True)
class Subject:
    """What a call is, as budgets and rate limits see it."""

    project: str
    key_id: str | None
    user: str | None
    model: str  # the alias called
    tags: tuple[str, ...] = ()

    def values(self, scope: str) -> tuple[str, ...]:
        """The subject's values in a scope (none: the scope does not apply)."""
        if scope == "project":
            return (self.project,)
        if scope == "key":
            return () if self.key_id is None else (self.key_id,)
        if scope == "user":
            return () if self.user is None else (self.user,)
        if scope == "model":
            return (self.model,)
        return tuple(dict.fromkeys(self.tags))  # each tag once


@dataclass(frozen=True, slots=True)
class Charge:
    """One counter a call reserves in: its rule, its value, and the call's amount."""

    counter: str  # the counter's name, shared by every replica
    rule: Rule
    value: str
    amount: int

    @property
    def budget(self) -> str:
        """The rule's label (a budget's or a rate limit's name)."""
        return self.rule.label

    @property
    def scope(self) -> str:
        return self.rule.scope

    @property
    def unit(self) -> Unit:
        return self.rule.unit

    @property
    def limit(self) -> int:
        return self.rule.limit

    @property
    def slot_s(self) -> int:
        """Seconds per slot (0: the window never ends)."""
        return WINDOWS[self.rule.window][0]

    @property
    def slots(self) -> int:
        return WINDOWS[self.rule.window][1]

    def with_amount(self, amount: int) -> Charge:
        """The same counter charged another amount (the actual one, at settlement)."""
        return Charge(self.counter, self.rule, self.value, max(0, amount))


@dataclass(frozen=True, slots=True)
class Cost:
    """A call's cost: micro-dollars (None: no price known), tokens (at most), the tokens
    a rate limit charges (an estimate; the same as `tokens` once known), requests."""

    micro_usd: int | None
    tokens: int
    estimate: int | None = None
    requests: int = 1

    @classmethod
    def of(cls, usd: float | None, tokens: int, estimate: int | None = None) -> Cost:
        """From dollars, rounded up to the micro-dollar (a reservation never falls short)."""
        micro = None if usd is None else max(0, math.ceil(usd * MICRO - 1e-6))  # float noise
        return cls(micro, max(0, tokens), estimate)

    def amount(self, rule: Rule) -> int:
        """The amount a rule charges (no known price counts 0 dollars)."""
        if rule.unit == "requests":
            return self.requests
        if rule.unit == "tokens":
            if rule.kind == "rate" and self.estimate is not None:
                return self.estimate
            return self.tokens
        return self.micro_usd or 0


def charges_for(rules: Sequence[Rule], subject: Subject, cost: Cost) -> list[Charge]:
    """The counters a call is charged in, with the call's amount in each."""
    found = []
    for rule in rules:
        for value in subject.values(rule.scope):
            if rule.match in ("*", value):
                counter = f"{rule.label}|{value}|{rule.unit}|{rule.window}"
                found.append(Charge(counter, rule, value, cost.amount(rule)))
    return found
