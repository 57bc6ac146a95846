"""Where cached answers live: this process's memory (LRU, bounded) or a Redis server."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

PREFIX = "ct:cache:"
DEFAULT_MAX_ENTRIES = 10_000


class AnswerCache(Protocol):
    """Answers by key, each kept for its own time."""

    async def get(self, key: str) -> bytes | None:
        """The answer stored under `key`, or None (never stored, or expired)."""
        ...

    async def put(self, key: str, value: bytes, ttl_s: float) -> None:
        """Keep `value` under `key` for `ttl_s` seconds."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class MemoryAnswerCache:
    """The answers of one process: the `max_entries` used most recently, each until it
    expires."""

    def __init__(
        self, max_entries: int = DEFAULT_MAX_ENTRIES, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    async def get(self, key: str) -> bytes | None:
        """The answer, if kept and not expired (it becomes the most recently used)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] <= self._clock():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry[1]

    async def put(self, key: str, value: bytes, ttl_s: float) -> None:
        """Keep the answer; the least recently used goes when the cache is full."""
        with self._lock:
            self._entries[key] = (self._clock() + ttl_s, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    async def aclose(self) -> None:
        """Nothing to release."""


class RedisAnswerCache:
    """Answers in Redis, shared by every replica; Redis expires them (PX)."""

    def __init__(self, url: str, *, prefix: str = PREFIX, timeout_s: float = 0.5) -> None:
        import redis.asyncio as aioredis

        self.url = url
        self.prefix = prefix
        self._redis: Any = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )

    async def get(self, key: str) -> bytes | None:
        """The answer, if Redis still has it."""
        value = await self._redis.get(self.prefix + key)
        return None if value is None else bytes(value)

    async def put(self, key: str, value: bytes, ttl_s: float) -> None:
        """Store it with its expiry."""
        await self._redis.set(self.prefix + key, value, px=max(1, int(ttl_s * 1000)))

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()
