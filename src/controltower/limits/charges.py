"""What one call is charged, in which counters: budgets turned into integer amounts.

Money is counted in micro-dollars and tokens in tokens, as integers, so that counters
kept by many replicas add up exactly. A budget over a rolling window counts spend in
slots (an hour in 60 one-minute slots, a day in 96 quarter hours, a week in 168 hours, a
month of 30 days in 120 six-hour slots): what was spent more than a window ago, to the
slot, no longer counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from controltower.settings import Budget

Unit = Literal["usd", "tokens"]
MICRO = 1_000_000  # micro-dollars in a dollar
# window -> (seconds per slot, slots per window); `total` is one slot that never ends
WINDOWS: dict[str, tuple[int, int]] = {
    "total": (0, 1),
    "hour": (60, 60),
    "day": (900, 96),
    "week": (3600, 168),
    "month": (21600, 120),
}


@dataclass(frozen=True, slots=True)
class Subject:
    """What a call is, as budgets see it."""

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
    """One counter a call reserves in: its limit and the call's most (or actual) amount."""

    counter: str  # the counter's name, shared by every replica
    budget: str  # the budget's label, for errors and reports
    scope: str
    value: str
    unit: Unit
    limit: int
    amount: int
    slot_s: int  # 0: the window never ends
    slots: int

    def with_amount(self, amount: int) -> Charge:
        """The same counter charged another amount (the actual one, at settlement)."""
        return Charge(
            self.counter, self.budget, self.scope, self.value, self.unit, self.limit,
            max(0, amount), self.slot_s, self.slots,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Cost:
    """A call's cost: micro-dollars (None: no price known) and tokens."""

    micro_usd: int | None
    tokens: int

    @classmethod
    def of(cls, usd: float | None, tokens: int) -> Cost:
        """From dollars, rounded up to the micro-dollar (a reservation never falls short)."""
        micro = None if usd is None else max(0, math.ceil(usd * MICRO - 1e-6))  # float noise
        return cls(micro, max(0, tokens))

    def amount(self, unit: Unit) -> int:
        """The amount in `unit` (no known price counts 0 dollars)."""
        return self.tokens if unit == "tokens" else (self.micro_usd or 0)


def applies_to_model(budget: Budget, alias: str) -> bool:
    """Whether a budget can charge calls of this alias (model budgets name theirs)."""
    return budget.scope != "model" or budget.match in ("*", alias)


def charges_for(budgets: Sequence[Budget], subject: Subject, cost: Cost) -> list[Charge]:
    """The counters a call is charged in, with the call's cost in each."""
    return list(_charges(budgets, subject, cost))


def _charges(budgets: Sequence[Budget], subject: Subject, cost: Cost) -> Iterator[Charge]:
    for budget in budgets:
        slot_s, slots = WINDOWS[budget.window]
        for value in subject.values(budget.scope):
            if budget.match not in ("*", value):
                continue
            for unit, limit in (("usd", budget.usd), ("tokens", budget.tokens)):
                if limit is None:
                    continue
                whole = int(limit * MICRO) if unit == "usd" else int(limit)
                yield Charge(
                    f"{budget.label}|{value}|{unit}", budget.label, budget.scope, value,
                    unit, whole, cost.amount(unit), slot_s, slots,  # type: ignore[arg-type]
                )  # fmt: skip
