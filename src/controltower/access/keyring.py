"""Every API key in memory, by the hash of its secret: a key is checked without a query, and
its last use is noted in memory and written to the store every ten seconds.

Each replica holds one ring. `refresh` reads the store's change counter (one indexed
read) and, when it moved, only the keys changed since; a background task calls it every
`refresh_s` (0.5 s by default), so a key revoked on one replica is refused on every
other within a second. When the store cannot be read the ring keeps what it has and
tries again: the gateway goes on serving the keys it knows.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time

from controltower.access.store import KeyStore
from controltower.domain.ids import now_us
from controltower.domain.keys import ApiKey, looks_like_secret, secret_hash

log = logging.getLogger("controltower.access")

REFRESH_S = 0.5
MISS_REFRESH_S = 0.1  # an unknown key reloads the ring at most this often
USED_EVERY = 20  # refreshes between writes of the keys' last uses (10 s)


class KeyRing:
    """The keys of a store in memory, refreshed by version."""

    def __init__(self, store: KeyStore, refresh_s: float = REFRESH_S) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self.version = 0  # the store's version the ring has read up to
        self.failures = 0  # refreshes that could not read the store
        self._by_hash: dict[str, ApiKey] = {}
        self._hash_of: dict[str, str] = {}  # key id -> the hash it is held under
        self._used: dict[str, int] = {}  # key id -> last use, not yet written to the store
        self._missed_at = 0.0  # when an unknown key last made the ring reload
        self._lock = threading.Lock()

    def lookup(self, secret: str, at_us: int | None = None) -> ApiKey | None:
        """The key a secret belongs to, when it is accepted now (not revoked or expired)."""
        if not looks_like_secret(secret):
            return None
        at_us = now_us() if at_us is None else at_us
        key = self._by_hash.get(secret_hash(secret))
        if key is None or not key.active(at_us):
            return None
        self._used[key.id] = at_us  # written to the store by the next refresh
        return key

    async def lookup_fresh(self, secret: str) -> ApiKey | None:
        """`lookup`, and when the secret is unknown, reload what changed first (at most
        every MISS_REFRESH_S, off the loop): a key made through another replica works at
        once, not only after the next refresh."""
        key = self.lookup(secret)
        if key is not None or not looks_like_secret(secret):
            return key
        now = time.monotonic()
        if now - self._missed_at < MISS_REFRESH_S:
            return None
        self._missed_at = now
        try:
            await asyncio.to_thread(self.refresh)
        except Exception:
            self.failures += 1
            log.warning("could not refresh the API keys", exc_info=True)
            return None
        return self.lookup(secret)

    def flush_used(self) -> int:
        """Write the keys' last uses to the store; how many keys (kept on failure)."""
        used, self._used = self._used, {}
        if not used:
            return 0
        try:
            self.store.touch_keys(used)
        except Exception:
            for key_id, at_us in used.items():  # a later use may have come in meanwhile
                self._used[key_id] = max(at_us, self._used.get(key_id, 0))
            raise
        return len(used)

    def refresh(self) -> bool:
        """Read what changed in the store since the last refresh; whether anything did."""
        version = self.store.keys_version()
        if version == self.version:
            return False
        changed = self.store.keys_by_hash(after_version=self.version)
        with self._lock:
            for digest, key in changed.items():
                old = self._hash_of.get(key.id)
                if old is not None and old != digest:
                    self._by_hash.pop(old, None)  # rotated: the old secret stops working
                self._by_hash[digest] = key
                self._hash_of[key.id] = digest
            self.version = max(self.version, version, *(k.version for k in changed.values()))
        return True

    async def keep_fresh(self) -> None:
        """Refresh every `refresh_s` until cancelled (the store's reads off the loop)."""
        for turn in itertools.count(1):
            try:
                await asyncio.to_thread(self.refresh)
                if turn % USED_EVERY == 0:
                    await asyncio.to_thread(self.flush_used)
            except Exception:  # the store is down: keep the keys known, try again
                self.failures += 1
                log.warning("could not refresh the API keys; keeping the ones known", exc_info=True)
            await asyncio.sleep(self.refresh_s)

    def __len__(self) -> int:
        return len(self._by_hash)
