"""The answer cache: keys that never cross projects, and stores in memory or in Redis."""

from controltower.cache.keys import cache_key
from controltower.cache.store import AnswerCache, MemoryAnswerCache

__all__ = ["AnswerCache", "MemoryAnswerCache", "cache_key"]
