"""The SQL key store: API keys by id and by the hash of their secret, each change audited.

Every change moves one counter (`api_key_version`, a single row) in its transaction:
writers queue on that row, so the versions are handed out in commit order, and a key
ring that has seen version N has seen every change up to N on every replica.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from controltower.domain.ids import now_us
from controltower.domain.keys import ApiKey, Role, draft_key, secret_hash, with_new_secret
from controltower.errors import NotFound
from controltower.store.schema import store_tables


class SqlKeyStore:
    """The KeyStore on SQLite or PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        tables = store_tables()
        self._keys = tables["api_keys"]
        self._version = tables["api_key_version"]
        self._audit = tables["audit_events"]

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
        with self._engine.begin() as conn:
            key, secret = draft_key(
                project, role=role, name=name, models=tuple(models), expires_us=expires_us,
                created_by=created_by, created_us=now_us(), version=self._next_version(conn),
            )  # fmt: skip
            conn.execute(sa.insert(self._keys).values(_row(key, secret_hash(secret))))
            self._audited(conn, created_by, "key.create", key, None, _shown(key))
        return key, secret

    def get_key(self, key_id: str) -> ApiKey:
        """One key by id; NotFound when there is none."""
        with self._engine.connect() as conn:
            return self._get(conn, key_id)

    def list_keys(self, project: str | None = None) -> list[ApiKey]:
        """The keys (of one project), newest first, revoked ones included."""
        k = self._keys
        query = sa.select(k).order_by(k.c.created_us.desc(), k.c.id.desc())
        if project is not None:
            query = query.where(k.c.project == project)
        with self._engine.connect() as conn:
            return [_key_of(row._mapping) for row in conn.execute(query)]

    def keys_by_hash(self, after_version: int = 0) -> dict[str, ApiKey]:
        """The keys changed after a version of the store, by the hash of their secret."""
        k = self._keys
        query = sa.select(k).where(k.c.version > after_version)
        with self._engine.connect() as conn:
            return {row.secret_hash: _key_of(row._mapping) for row in conn.execute(query)}

    def keys_version(self) -> int:
        """The store's change counter (0: no key ever)."""
        v = self._version
        with self._engine.connect() as conn:
            found = conn.execute(sa.select(v.c.version).where(v.c.id == 1)).scalar()
        return int(found or 0)

    def revoke_key(self, key_id: str, *, actor: str | None = None) -> ApiKey:
        """Revoke a key (again is a no-op); NotFound when there is none."""
        k = self._keys
        with self._engine.begin() as conn:
            before = self._get(conn, key_id)
            if before.revoked_us is not None:
                return before
            after = replace(before, revoked_us=now_us(), version=self._next_version(conn))
            conn.execute(
                sa.update(k)
                .where(k.c.id == key_id)
                .values(revoked_us=after.revoked_us, version=after.version)
            )
            self._audited(conn, actor, "key.revoke", after, _shown(before), _shown(after))
        return after

    def rotate_key(self, key_id: str, *, actor: str | None = None) -> tuple[ApiKey, str]:
        """A new secret for a key (same id, role and limits); the old one stops working."""
        k = self._keys
        with self._engine.begin() as conn:
            before = self._get(conn, key_id)
            after, secret = with_new_secret(before, self._next_version(conn))
            changes = {
                "secret_hash": secret_hash(secret),
                "prefix": after.prefix,
                "version": after.version,
            }
            conn.execute(sa.update(k).where(k.c.id == key_id).values(**changes))
            self._audited(conn, actor, "key.rotate", after, _shown(before), _shown(after))
        return after, secret

    def touch_keys(self, used: Mapping[str, int]) -> None:
        """Record when keys were last used (the latest time wins; no version moves)."""
        if not used:
            return
        k = self._keys
        later = sa.func.coalesce(k.c.last_used_us, 0) < sa.bindparam("at")
        update = (
            sa.update(k)
            .where(k.c.id == sa.bindparam("key_id"), later)
            .values(last_used_us=sa.bindparam("at"))
        )
        rows = [{"key_id": key_id, "at": at_us} for key_id, at_us in used.items()]
        with self._engine.begin() as conn:
            conn.execute(update, rows)

    # -- inside a transaction -----------------------------------------------------------

    def _next_version(self, conn: Connection) -> int:
        """Move the change counter (its row stays locked until the commit)."""
        v = self._version
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        insert = dialect.insert(v).values(id=1, version=1)
        bump = insert.on_conflict_do_update(
            index_elements=[v.c.id], set_={"version": v.c.version + 1}
        ).returning(v.c.version)
        return int(conn.execute(bump).scalar_one())

    def _get(self, conn: Connection, key_id: str) -> ApiKey:
        row = conn.execute(sa.select(self._keys).where(self._keys.c.id == key_id)).first()
        if row is None:
            raise NotFound(f"no API key {key_id!r}", param="key")
        return _key_of(row._mapping)

    def _audited(
        self,
        conn: Connection,
        actor: str | None,
        action: str,
        key: ApiKey,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> None:
        row = {
            "at_us": now_us(),
            "actor": actor,
            "action": action,
            "target": f"key:{key.id}",
            "before": before,
            "after": after,
        }
        conn.execute(sa.insert(self._audit).values(row))


def _row(key: ApiKey, digest: str) -> dict[str, Any]:
    return {
        "id": key.id,
        "project": key.project,
        "name": key.name,
        "prefix": key.prefix,
        "secret_hash": digest,
        "role": key.role,
        "models": list(key.models),
        "expires_us": key.expires_us,
        "revoked_us": key.revoked_us,
        "created_us": key.created_us,
        "created_by": key.created_by,
        "last_used_us": key.last_used_us,
        "version": key.version,
    }


def _key_of(row: Any) -> ApiKey:
    return ApiKey(
        id=row["id"],
        project=row["project"],
        prefix=row["prefix"],
        role=row["role"],
        created_us=row["created_us"],
        version=row["version"],
        name=row["name"],
        models=tuple(row["models"] or ()),
        expires_us=row["expires_us"],
        revoked_us=row["revoked_us"],
        created_by=row["created_by"],
        last_used_us=row["last_used_us"],
    )


def _shown(key: ApiKey) -> dict[str, Any]:
    """What the audit log keeps of a key: everything but its secret's hash."""
    return {
        "id": key.id,
        "project": key.project,
        "name": key.name,
        "prefix": key.prefix,
        "role": key.role,
        "models": list(key.models),
        "expires_us": key.expires_us,
        "revoked_us": key.revoked_us,
    }
