"""Projects and API keys: the store of keys, and the ring that holds them in memory."""

from controltower.access.keyring import KeyRing
from controltower.access.store import KeyStore

__all__ = ["KeyRing", "KeyStore"]
