"""API keys on every store: only hashes kept, every change audited and counted in order,
so that each replica's key ring sees every change (concurrent ones too)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa

from controltower.access import KeyRing, KeyStore
from controltower.domain.keys import looks_like_secret, secret_hash
from controltower.errors import InvalidRequest, NotFound


@pytest.fixture
def keys(store: Any) -> Any:
    """Each key store in turn (memory, SQLite, PostgreSQL), beside its trace store."""
    return store.key_store()


def test_a_key_is_shown_once_and_only_its_hash_is_kept(keys: Any) -> None:
    assert isinstance(keys, KeyStore) and keys.keys_version() == 0
    key, secret = keys.create_key(
        "support", role="read", name="dashboards", models=["fast"], created_by="ana"
    )
    assert looks_like_secret(secret) and key.prefix == secret[:10] and secret not in repr(key)
    assert (key.project, key.role, key.name) == ("support", "read", "dashboards")
    assert key.models == ("fast",)
    assert key.allows_model("fast") and not key.allows_model("slow")
    assert keys.get_key(key.id) == key and keys.list_keys("support") == [key]
    assert keys.list_keys("other") == []
    assert keys.keys_by_hash() == {secret_hash(secret): key}
    assert keys.keys_version() == key.version == 1
    if hasattr(keys, "_engine"):  # the secret is nowhere in the database
        with keys._engine.connect() as conn:
            dumped = str(conn.execute(sa.text("SELECT * FROM api_keys")).all())
            audit = str(conn.execute(sa.text("SELECT * FROM audit_events")).all())
        assert secret not in dumped and secret not in audit
        assert "key.create" in audit and secret_hash(secret) not in audit


def test_revoke_and_rotate_move_the_version_and_are_audited(keys: Any) -> None:
    key, _ = keys.create_key("support")
    revoked = keys.revoke_key(key.id, actor="lead")
    assert revoked.revoked_us is not None and not revoked.active(revoked.revoked_us + 1)
    assert keys.revoke_key(key.id).version == revoked.version  # again: nothing changes
    other, old_secret = keys.create_key("support", expires_us=10**18)
    rotated, new_secret = keys.rotate_key(other.id, actor="lead")
    assert rotated.id == other.id and new_secret != old_secret
    assert rotated.prefix == new_secret[:10] and rotated.version > other.version
    by_hash = keys.keys_by_hash()
    assert secret_hash(old_secret) not in by_hash and by_hash[secret_hash(new_secret)] == rotated
    assert keys.keys_by_hash(after_version=rotated.version - 1) == {
        secret_hash(new_secret): rotated
    }
    assert keys.keys_version() == rotated.version == 4
    with pytest.raises(NotFound):
        keys.revoke_key("key_nope")


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"project": "Bad Project"}, "project"),
        ({"project": "p", "role": "owner"}, "role"),
        ({"project": "p", "name": "two\nlines"}, "name"),
    ],
)
def test_bad_key_fields_are_refused(keys: Any, fields: dict[str, Any], param: str) -> None:
    given = dict(fields)
    project = given.pop("project")
    with pytest.raises(InvalidRequest) as refused:
        keys.create_key(project, **given)
    assert refused.value.param == param and keys.keys_version() == 0


def test_a_ring_sees_every_change_made_at_once_from_many_threads(keys: Any) -> None:
    ring = KeyRing(keys)
    made, secrets, start = [], [], threading.Barrier(8)

    def create() -> None:
        start.wait(5)
        key, secret = keys.create_key("load")
        made.append(key)
        secrets.append(secret)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
        ring.refresh()  # refreshes racing the writers
    for thread in threads:
        thread.join()
    ring.refresh()
    assert len(ring) == 8 and all(ring.lookup(s) is not None for s in secrets)
    assert sorted(k.version for k in keys.list_keys()) == list(range(1, 9))
    keys.revoke_key(made[0].id)
    assert ring.refresh() and ring.lookup(secrets[0]) is None
    assert not ring.refresh()  # nothing moved since
