"""A circuit breaker per deployment: open after repeated failures, probe once when cool."""

from __future__ import annotations

import time


class CircuitBreaker:
    """Closed → open (cooling down) → half-open (one probe) → closed or open again."""

    __slots__ = ("_clock", "cooldown_s", "failures", "open_until", "probing", "threshold")

    def __init__(self, threshold: int, cooldown_s: float) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.failures = 0
        self.open_until = 0.0
        self.probing = False
        self._clock = time.monotonic

    @property
    def state(self) -> str:
        """`closed`, `open` or `half-open`, for health pages and tests."""
        if self.open_until == 0.0:
            return "closed"
        if self.probing or self._clock() >= self.open_until:
            return "half-open"
        return "open"

    def allows(self) -> bool:
        """Whether a call may go to this deployment now."""
        if self.open_until == 0.0:
            return True
        return not self.probing and self._clock() >= self.open_until

    def on_call(self) -> None:
        """A call is starting; if the breaker was cooling, this call is its probe."""
        if self.open_until != 0.0:
            self.probing = True

    def on_success(self) -> None:
        """The call worked: close the breaker."""
        self.failures = 0
        self.open_until = 0.0
        self.probing = False

    def on_failure(self, cooldown_s: float | None = None) -> None:
        """The call failed; open when failures reach the threshold or the provider said wait."""
        self.failures += 1
        was_probe = self.probing
        self.probing = False
        if cooldown_s is not None or was_probe or self.failures >= self.threshold:
            wait = self.cooldown_s if cooldown_s is None else max(cooldown_s, 0.0)
            self.open_until = self._clock() + wait

    def ready_in(self) -> float:
        """Seconds until a call may go through (0 when it may now)."""
        if self.allows():
            return 0.0
        return max(0.0, self.open_until - self._clock())
