"""Where API keys are kept (SQL or memory); every change is in the audit log."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from controltower.domain.keys import ApiKey, Role


@runtime_checkable
class KeyStore(Protocol):
    """API keys by id and by the hash of their secret."""

    def create_key(
        self,
        project: str,
        *,
        role: Role = "write",
        name: str | None = None,
        models: Sequence[str] = (),
        expires_us: int | None = None,
        created_by: str | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key and its secret (shown once: only its hash is stored)."""
        ...

    def get_key(self, key_id: str) -> ApiKey:
        """One key by id; NotFound when there is none."""
        ...

    def list_keys(self, project: str | None = None) -> list[ApiKey]:
        """The keys (of one project), newest first, revoked ones included."""
        ...

    def keys_by_hash(self, after_version: int = 0) -> dict[str, ApiKey]:
        """The keys changed after a version of the store, by the hash of their secret:
        what the key ring holds in memory (all of them from version 0)."""
        ...

    def keys_version(self) -> int:
        """The store's change counter: one more for every change, in commit order, on
        every replica (0: no key ever). The ring reloads what changed when it moves."""
        ...

    def revoke_key(self, key_id: str, *, actor: str | None = None) -> ApiKey:
        """Revoke a key (again is a no-op); NotFound when there is none."""
        ...

    def rotate_key(self, key_id: str, *, actor: str | None = None) -> tuple[ApiKey, str]:
        """A new secret for a key (same id, role and limits); the old one stops working."""
        ...

    def touch_keys(self, used: Mapping[str, int]) -> None:
        """Record when keys were last used (key id -> time in µs; an earlier time than
        the one stored is ignored). Not a change: the counter does not move."""
        ...
