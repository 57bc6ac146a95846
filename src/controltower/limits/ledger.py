"""Reservations against counters: admit a call in every counter at once, settle it after.

A `Ledger` admits a call only if, in each of its counters, what was spent in the window
plus what other calls hold reserved plus this call's most cost stays within the limit;
then it holds that amount in all of them, in one atomic step. Settling the call releases
the hold and adds what it really cost. A hold whose call never settles (its process
died) expires after `ttl_s` by itself. Admit and settle are idempotent by request id.

`MemoryLedger` counts in one process; `RedisLedger` (limits/redis_ledger.py) in Redis,
shared by every replica.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from controltower.limits.charges import Charge

_DONE_KEPT = 100_000  # settled request ids remembered, for idempotent settlement


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a call was not admitted: the first counter it would overrun."""

    charge: Charge
    used: int  # spent in the window plus reserved, before this call
    frees_at: float | None  # when the oldest spend still counted leaves the window


@dataclass(frozen=True, slots=True)
class Admission:
    """The answer to an admission: a refusal, or each counter's state before the call
    (what was used in it, and when its oldest use leaves the window; None: never)."""

    refusal: Refusal | None = None
    used: tuple[int, ...] = ()
    frees_at: tuple[float | None, ...] = ()

    @property
    def admitted(self) -> bool:
        return self.refusal is None


def frees_at(charge: Charge, oldest_slot: int | None) -> float | None:
    """When the oldest slot still counted leaves the charge's window."""
    if oldest_slot is None or oldest_slot < 0 or charge.slot_s == 0:
        return None
    return float((oldest_slot + charge.slots) * charge.slot_s)


class Ledger(Protocol):
    """Counters with holds, in one process or shared."""

    async def admit(self, request_id: str, charges: Sequence[Charge], ttl_s: float) -> Admission:
        """Hold every charge's amount, or none of them (the refusal says which overran)."""
        ...

    async def settle(self, request_id: str, actual: Sequence[Charge]) -> None:
        """Release the call's hold and add its actual amounts (the same counters)."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def slot_of(charge: Charge, now_s: float) -> int:
    """The slot spend made now is counted in (0 for a window that never ends)."""
    return 0 if charge.slot_s == 0 else int(now_s // charge.slot_s)


class MemoryLedger:
    """The counters of one process, exact under any concurrency of its event loop."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._spent: dict[str, dict[int, int]] = {}  # counter -> slot -> amount
        self._reserved: dict[str, int] = {}
        self._holds: dict[str, list[tuple[str, int]]] = {}  # request id -> what it holds
        self._deadlines: list[tuple[float, str]] = []  # (expiry, request id), a heap
        self._done: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()  # settlement may come from another thread

    async def admit(self, request_id: str, charges: Sequence[Charge], ttl_s: float) -> Admission:
        """Hold every charge, or refuse on the first that would overrun."""
        return self.admit_now(request_id, charges, ttl_s)

    def admit_now(self, request_id: str, charges: Sequence[Charge], ttl_s: float) -> Admission:
        now = self._clock()
        with self._lock:
            self._expire(now)
            if request_id in self._holds or request_id in self._done:
                return Admission()
            used_all: list[int] = []
            frees_all: list[float | None] = []
            for charge in charges:
                spent, oldest = self._window(charge, now)
                used = spent + self._reserved.get(charge.counter, 0)
                if used + charge.amount > charge.limit:
                    return Admission(Refusal(charge, used, frees_at(charge, oldest)))
                used_all.append(used)
                frees_all.append(frees_at(charge, oldest))
            reserved = self._reserved
            for charge in charges:
                reserved[charge.counter] = reserved.get(charge.counter, 0) + charge.amount
            self._holds[request_id] = [(c.counter, c.amount) for c in charges]
            heapq.heappush(self._deadlines, (now + ttl_s, request_id))
        return Admission(None, tuple(used_all), tuple(frees_all))

    async def settle(self, request_id: str, actual: Sequence[Charge]) -> None:
        """Release the hold and count the actual amounts (once per request id)."""
        self.settle_now(request_id, actual)

    def settle_now(self, request_id: str, actual: Sequence[Charge]) -> None:
        now = self._clock()
        with self._lock:
            if request_id in self._done:
                return
            self._release(request_id)
            for charge in actual:
                slots = self._spent.setdefault(charge.counter, {})
                slot = slot_of(charge, now)
                slots[slot] = slots.get(slot, 0) + charge.amount
            self._done[request_id] = None
            if len(self._done) > _DONE_KEPT:
                self._done.popitem(last=False)

    async def aclose(self) -> None:
        """Nothing to release."""

    def spent(self, counter: str) -> int:
        """Everything counted in a counter, every slot (tests and reports)."""
        with self._lock:
            return sum(self._spent.get(counter, {}).values())

    def reserved(self, counter: str) -> int:
        """What calls in flight hold in a counter."""
        with self._lock:
            return self._reserved.get(counter, 0)

    def _window(self, charge: Charge, now: float) -> tuple[int, int | None]:
        """Spend within the charge's window, and its oldest slot (dropping older ones)."""
        slots = self._spent.get(charge.counter)
        if not slots:
            return 0, None
        if charge.slot_s == 0:
            return slots.get(0, 0), None
        first = slot_of(charge, now) - charge.slots + 1
        for old in [s for s in slots if s < first]:
            del slots[old]
        live = [s for s, amount in slots.items() if amount > 0]
        return sum(slots.values()), (min(live) if live else None)

    def _expire(self, now: float) -> None:
        while self._deadlines and self._deadlines[0][0] <= now:
            _, request_id = heapq.heappop(self._deadlines)
            self._release(request_id)

    def _release(self, request_id: str) -> None:
        for counter, amount in self._holds.pop(request_id, ()):
            self._reserved[counter] -= amount
