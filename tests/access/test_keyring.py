"""The key ring: lookups from memory only; revocation, rotation and expiry take effect at
the next refresh; a store that cannot be read leaves the known keys working."""

from __future__ import annotations

import asyncio

import pytest

from controltower.access import KeyRing
from controltower.domain.ids import now_us
from controltower.domain.keys import expiry_us, new_secret
from controltower.errors import InvalidRequest
from controltower.store.memory_keys import InMemoryKeyStore


class Counting(InMemoryKeyStore):
    """A store that counts its reads, and can be made to fail."""

    def __init__(self) -> None:
        super().__init__()
        self.reads, self.down = 0, False

    def keys_version(self) -> int:
        self.reads += 1
        if self.down:
            raise ConnectionError("the database is down")
        return super().keys_version()


def test_lookups_never_read_the_store() -> None:
    store = Counting()
    key, secret = store.create_key("support")
    ring = KeyRing(store)
    ring.refresh()
    reads = store.reads
    for _ in range(1000):
        assert ring.lookup(secret) == key
    assert ring.lookup(new_secret()) is None and ring.lookup("Bearer nonsense") is None
    assert store.reads == reads


def test_rotation_revocation_and_expiry() -> None:
    store = InMemoryKeyStore()
    key, old = store.create_key("support", expires_us=now_us() + 60_000_000)
    ring = KeyRing(store)
    ring.refresh()
    _, new = store.rotate_key(key.id)
    assert ring.lookup(old) is not None  # until the next refresh
    ring.refresh()
    assert ring.lookup(old) is None and ring.lookup(new) is not None
    assert ring.lookup(new, at_us=now_us() + 61_000_000) is None  # expired by then
    store.revoke_key(key.id)
    ring.refresh()
    assert ring.lookup(new) is None


def test_a_store_that_is_down_keeps_the_known_keys() -> None:
    store = Counting()
    _, secret = store.create_key("support")
    ring = KeyRing(store, refresh_s=0.01)

    async def run() -> None:
        task = asyncio.create_task(ring.keep_fresh())
        await asyncio.sleep(0.05)
        store.down = True
        await asyncio.sleep(0.05)
        task.cancel()

    asyncio.run(run())
    assert ring.failures > 0 and ring.lookup(secret) is not None


@pytest.mark.parametrize("text", ["30", "0d", "30y", "-1d", "d", "1000000d"])
def test_expiry_must_be_a_time_from_now(text: str) -> None:
    with pytest.raises(InvalidRequest):
        expiry_us(text, 0)


def test_expiry_units() -> None:
    day = 86_400_000_000
    assert expiry_us("30d", 5) == 5 + 30 * day and expiry_us("2w", 0) == 14 * day
    assert expiry_us("12h", 0) == day // 2 and expiry_us("90m", 0) == 90 * 60_000_000
    assert expiry_us(None, 0) is None
