"""CircuitBreaker: closed → open → half-open (one probe) → closed or open again."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from controltower.gateway import breaker as breaker_module
from controltower.gateway.breaker import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(breaker_module, "time", SimpleNamespace(monotonic=fake))
    return fake


def test_opens_at_the_threshold(clock: Clock) -> None:
    breaker = CircuitBreaker(threshold=3, cooldown_s=30)
    for _ in range(2):
        breaker.on_call()
        breaker.on_failure()
        assert breaker.state == "closed"
        assert breaker.allows()
    breaker.on_call()
    breaker.on_failure()
    assert breaker.state == "open"
    assert not breaker.allows()
    assert breaker.ready_in() == 30.0
    clock.now += 10
    assert breaker.ready_in() == 20.0


def test_success_resets_the_failure_count(clock: Clock) -> None:
    breaker = CircuitBreaker(threshold=2, cooldown_s=30)
    breaker.on_failure()
    breaker.on_success()
    breaker.on_failure()
    assert breaker.state == "closed"
    assert breaker.failures == 1


def test_half_open_lets_a_single_probe_through(clock: Clock) -> None:
    breaker = CircuitBreaker(threshold=1, cooldown_s=5)
    breaker.on_failure()
    assert not breaker.allows()
    clock.now += 5
    assert breaker.state == "half-open"
    assert breaker.allows()
    assert breaker.ready_in() == 0.0

    breaker.on_call()  # the probe
    assert breaker.state == "half-open"
    assert not breaker.allows()  # no second call while the probe is out
    assert breaker.probing


def test_probe_success_closes(clock: Clock) -> None:
    breaker = CircuitBreaker(threshold=1, cooldown_s=5)
    breaker.on_failure()
    clock.now += 6
    breaker.on_call()
    breaker.on_success()
    assert breaker.state == "closed"
    assert breaker.allows()
    assert (breaker.failures, breaker.open_until, breaker.probing) == (0, 0.0, False)


def test_probe_failure_reopens_for_a_full_cooldown(clock: Clock) -> None:
    breaker = CircuitBreaker(threshold=3, cooldown_s=5)
    breaker.on_failure(cooldown_s=2)  # below the threshold, but the provider said wait
    clock.now += 2
    breaker.on_call()
    breaker.on_failure()
    assert breaker.state == "open"
    assert not breaker.probing
    assert breaker.open_until == clock.now + 5
    clock.now += 4.9
    assert not breaker.allows()
    clock.now += 0.1
    assert breaker.allows()


def test_explicit_cooldown_opens_below_the_threshold(clock: Clock) -> None:
    breaker = CircuitBreaker(threshold=10, cooldown_s=30)
    breaker.on_failure(cooldown_s=7)
    assert breaker.state == "open"
    assert breaker.ready_in() == 7.0
    breaker.on_failure(cooldown_s=-3)  # a bogus negative wait counts as none
    assert breaker.open_until == clock.now


def test_explicit_cooldown_replaces_the_configured_one(clock: Clock) -> None:
    breaker = CircuitBreaker(threshold=1, cooldown_s=30)
    breaker.on_failure(cooldown_s=1.5)
    assert breaker.ready_in() == 1.5


def test_open_until_can_be_set_directly() -> None:
    breaker = CircuitBreaker(threshold=1, cooldown_s=30)
    breaker.on_failure()
    assert breaker.state == "open"
    breaker.open_until = 1.0  # long past on the monotonic clock
    assert breaker.state == "half-open"
    assert breaker.allows()
