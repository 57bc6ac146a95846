"""The KeyStore in memory (tests, demos): the same rules as the SQL store."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from controltower.domain.ids import now_us
from controltower.domain.keys import ApiKey, Role, draft_key, secret_hash, with_new_secret
from controltower.errors import NotFound


class InMemoryKeyStore:
    """API keys in a dict, under a lock; `audit` lists every change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, tuple[str, ApiKey]] = {}  # id -> (hash, key)
        self._version = 0
        self.audit: list[dict[str, Any]] = []

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
        """A new key and its secret (shown once: only its hash is kept)."""
        with self._lock:
            key, secret = draft_key(
                project, role=role, name=name, models=tuple(models), expires_us=expires_us,
                created_by=created_by, created_us=now_us(), version=self._version + 1,
            )  # fmt: skip
            self._version += 1
            self._keys[key.id] = (secret_hash(secret), key)
            self._audited(created_by, "key.create", key)
        return key, secret

    def get_key(self, key_id: str) -> ApiKey:
        """One key by id; NotFound when there is none."""
        with self._lock:
            return self._get(key_id)[1]

    def list_keys(self, project: str | None = None) -> list[ApiKey]:
        """The keys (of one project), newest first, revoked ones included."""
        with self._lock:
            found = [k for _, k in self._keys.values() if project in (None, k.project)]
        return sorted(found, key=lambda k: (k.created_us, k.id), reverse=True)

    def keys_by_hash(self, after_version: int = 0) -> dict[str, ApiKey]:
        """The keys changed after a version of the store, by the hash of their secret."""
        with self._lock:
            return {h: k for h, k in self._keys.values() if k.version > after_version}

    def keys_version(self) -> int:
        """The store's change counter (0: no key ever)."""
        with self._lock:
            return self._version

    def revoke_key(self, key_id: str, *, actor: str | None = None) -> ApiKey:
        """Revoke a key (again is a no-op); NotFound when there is none."""
        with self._lock:
            digest, key = self._get(key_id)
            if key.revoked_us is not None:
                return key
            self._version += 1
            key = replace(key, revoked_us=now_us(), version=self._version)
            self._keys[key_id] = (digest, key)
            self._audited(actor, "key.revoke", key)
            return key

    def rotate_key(self, key_id: str, *, actor: str | None = None) -> tuple[ApiKey, str]:
        """A new secret for a key (same id, role and limits); the old one stops working."""
        with self._lock:
            _, key = self._get(key_id)
            self._version += 1
            key, secret = with_new_secret(key, self._version)
            self._keys[key_id] = (secret_hash(secret), key)
            self._audited(actor, "key.rotate", key)
        return key, secret

    def touch_keys(self, used: Mapping[str, int]) -> None:
        """Record when keys were last used (the latest time wins)."""
        with self._lock:
            for key_id, at_us in used.items():
                found = self._keys.get(key_id)
                if found is not None and (found[1].last_used_us or 0) < at_us:
                    self._keys[key_id] = (found[0], replace(found[1], last_used_us=at_us))

    def _get(self, key_id: str) -> tuple[str, ApiKey]:
        found = self._keys.get(key_id)
        if found is None:
            raise NotFound(f"no API key {key_id!r}", param="key")
        return found

    def _audited(self, actor: str | None, action: str, key: ApiKey) -> None:
        self.audit.append({"actor": actor, "action": action, "target": f"key:{key.id}"})
