"""`controltower keys`: create, list, rotate and revoke API keys, in the gateway's database.

A key's secret is printed once, when it is made or rotated; the database keeps only its
hash. Running gateways pick every change up within a second.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
import orjson

from controltower.access import KeyStore
from controltower.cli.common import acting_user, config_option, database_url_option, fail, open_at
from controltower.domain.ids import now_us
from controltower.domain.keys import ROLES, ApiKey, expiry_us, key_view
from controltower.errors import ControlTowerError


@contextmanager
def key_store(
    config: str | None, database_url: str | None, *, must_exist: bool
) -> Iterator[KeyStore]:
    """The key store of the command; its errors end the command with status 2."""
    from controltower.store import open_store

    store = open_at(config, database_url, open_store, must_exist=must_exist)
    try:
        yield store.key_store()
    except ControlTowerError as exc:
        fail(exc)
    finally:
        store.close()


@click.group()
def keys() -> None:
    """Projects' API keys: create, list, rotate, revoke."""


@keys.command()
@click.option("--project", required=True, help="The project the key writes and reads")
@click.option("--name", help="A name for people (e.g. the service that uses it)")
@click.option(
    "--role",
    type=click.Choice(ROLES),
    default="write",
    show_default=True,
    help="admin: manage the project's keys too; write: call and write; ingest: send "
    "traces only; read: read only",
)
@click.option("--models", help="The model aliases it may call, comma-separated (default: all)")
@click.option("--expires", help="When it stops working: 30d, 12h, 90m, 2w (default: never)")
@click.option("--actor", help="Who makes the key, for the audit log (default: you)")
@click.option("--json", "as_json", is_flag=True, help="Print the key as JSON")
@config_option
@database_url_option
def create(
    project: str,
    name: str | None,
    role: str,
    models: str | None,
    expires: str | None,
    actor: str | None,
    as_json: bool,
    config: str | None,
    database_url: str | None,
) -> None:
    """Make a key; its secret is printed this once."""
    allowed = [m.strip() for m in (models or "").split(",") if m.strip()]
    with key_store(config, database_url, must_exist=False) as store:
        key, secret = store.create_key(
            project,
            role=role,  # type: ignore[arg-type]  # one of ROLES, checked by click
            name=name,
            models=allowed,
            expires_us=expiry_us(expires, now_us()),
            created_by=acting_user(actor),
        )
    _print_secret(key, secret, as_json)


@keys.command("list")
@click.option("--project", help="Only this project's keys")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines")
@config_option
@database_url_option
def list_keys(
    project: str | None, as_json: bool, config: str | None, database_url: str | None
) -> None:
    """The keys, newest first: prefix, project, role, name, last use (never the secret)."""
    with key_store(config, database_url, must_exist=True) as store:
        found = store.list_keys(project)
    for key in found:
        click.echo(orjson.dumps(key_view(key)).decode() if as_json else _line(key))
    if not found and not as_json:
        click.echo("no API keys" + (f" in project {project!r}" if project else ""), err=True)


@keys.command()
@click.argument("key_id")
@click.option("--actor", help="Who rotates it, for the audit log (default: you)")
@click.option("--json", "as_json", is_flag=True, help="Print the key as JSON")
@config_option
@database_url_option
def rotate(
    key_id: str, actor: str | None, as_json: bool, config: str | None, database_url: str | None
) -> None:
    """A new secret for KEY_ID (printed this once); the old one stops working."""
    with key_store(config, database_url, must_exist=True) as store:
        key, secret = store.rotate_key(key_id, actor=acting_user(actor))
    _print_secret(key, secret, as_json)


@keys.command()
@click.argument("key_id")
@click.option("--actor", help="Who revokes it, for the audit log (default: you)")
@config_option
@database_url_option
def revoke(key_id: str, actor: str | None, config: str | None, database_url: str | None) -> None:
    """Revoke KEY_ID: every gateway refuses it within a second."""
    with key_store(config, database_url, must_exist=True) as store:
        key = store.revoke_key(key_id, actor=acting_user(actor))
    click.echo(f"revoked {key.id} ({key.prefix}…, project {key.project})")


def _print_secret(key: ApiKey, secret: str, as_json: bool) -> None:
    if as_json:
        click.echo(orjson.dumps({**key_view(key), "secret": secret}).decode())
        return
    click.echo(secret)
    click.echo(
        f"{key.id}: project {key.project}, role {key.role}; the secret above is shown "
        "once: store it now",
        err=True,
    )


def _line(key: ApiKey) -> str:
    view: dict[str, Any] = key_view(key)
    state = (
        "revoked"
        if key.revoked_us
        else ("expires " + view["expires_at"] if key.expires_us else "active")
    )
    used = view["last_used_at"] or "never used"
    models = ",".join(key.models) or "all models"
    return (
        f"{key.id}  {key.prefix}…  {key.project:<16} {key.role:<6} {state:<28} "
        f"{used:<20} {models}  {key.name or ''}".rstrip()
    )
