"""`controltower prompts`: the Git workflow and label moves, over the SQL prompt store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import orjson

from controltower.cli.common import acting_user, database_url_option, fail, open_at, when
from controltower.domain.prompt import AuditEvent, LabelMove, PromptVersion, SplitArm
from controltower.errors import ControlTowerError, InvalidRequest
from controltower.prompts import (
    PromptStore,
    diff_versions,
    dump_prompt,
    pull_dir,
    push_dir,
)
from controltower.prompts.content import version_number, version_or_label

CONFIG_HELP = "YAML config file (its database_url is where prompts are stored)"
_config_option = click.option("--config", "-c", type=click.Path(dir_okay=False), help=CONFIG_HELP)


def config_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """--config and --database-url: where the prompts are."""
    return _config_option(database_url_option(command))


force_option = click.option("--force", is_flag=True, help="change a protected label anyway")
actor_option = click.option(
    "--actor", default=None, help="who does it (default: $CONTROLTOWER_USER or the login name)"
)


def open_prompt_store(
    config: str | None, database_url: str | None, *, must_exist: bool
) -> PromptStore:
    """The prompt store of the command; a read never creates a new SQLite file.

    Tests replace this function.
    """
    from controltower.store import open_prompt_store as open_sql

    return open_at(config, database_url, open_sql, must_exist=must_exist)


@contextmanager
def _store(
    config: str | None, database_url: str | None, *, must_exist: bool = True
) -> Iterator[PromptStore]:
    store = open_prompt_store(config, database_url, must_exist=must_exist)
    try:
        yield store
    except ControlTowerError as exc:
        fail(exc)
    finally:
        close: Callable[[], None] | None = getattr(store, "close", None)
        if close is not None:
            close()


@click.group()
def prompts() -> None:
    """Versioned prompts: push and pull files, labels, rollback, diff, audit."""


@prompts.command()
@click.argument("directory", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--label", "-l", help="also point this label at each pushed version")
@click.option("--message", "-m", help="the commit message of new versions")
@click.option("--author", default=None, help="default: $CONTROLTOWER_USER or the login name")
@force_option
@config_option
def push(
    directory: Path,
    label: str | None,
    message: str | None,
    author: str | None,
    force: bool,
    config: str | None,
    database_url: str | None,
) -> None:
    """Create a version of every prompt file in DIRECTORY whose content changed."""
    with _store(config, database_url, must_exist=False) as store:
        report = push_dir(
            store, directory, label=label, message=message, author=acting_user(author), force=force
        )
    for item in report:
        state = "created" if item.created else "unchanged"
        moved = f", {label} -> #{item.version}" if item.label_moved else ""
        click.echo(f"{item.name}#{item.version} {state}{moved}  ({item.path})")
    created = sum(item.created for item in report)
    click.echo(f"{len(report)} prompt(s): {created} new version(s)")


@prompts.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--label", "-l", help="the version at this label (default: latest)")
@config_option
def pull(directory: Path, label: str | None, config: str | None, database_url: str | None) -> None:
    """Write one file per prompt into DIRECTORY, as it was pushed."""
    with _store(config, database_url) as store:
        report = pull_dir(store, directory, label=label)
    for item in report:
        if item.path is None:
            click.echo(f"{item.name}: no label {label!r}, skipped")
        else:
            click.echo(f"{item.name}#{item.version} -> {item.path}")


@prompts.command("list")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@config_option
def list_prompts(as_json: bool, config: str | None, database_url: str | None) -> None:
    """List prompts with their newest version and labels."""
    with _store(config, database_url) as store:
        found = store.list_prompts()
    if as_json:
        rows = [
            {
                "name": v.name,
                "version": v.version,
                "created_us": v.created_us,
                "labels": {lb.label: lb.version for lb in labels},
            }
            for v, labels in found
        ]
        click.echo(orjson.dumps(rows).decode())
        return
    for newest, labels in found:
        marks = " ".join(f"{lb.label}=#{lb.version}" for lb in labels)
        click.echo(f"{newest.name:<32} #{newest.version:<4} {when(newest.created_us)}  {marks}")


def parse_ref(ref: str) -> tuple[str, int | None, str | None]:
    """NAME, NAME@LABEL or NAME#VERSION as (name, version, label)."""
    if "#" in ref:
        name, _, number = ref.partition("#")
        version = version_number(number)
        if version is None:
            raise InvalidRequest(f"{ref!r}: write NAME#VERSION with a version number")
        return name, version, None
    name, _, label = ref.partition("@")
    return name, None, label or None


@prompts.command()
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="print the version as JSON")
@config_option
def show(ref: str, as_json: bool, config: str | None, database_url: str | None) -> None:
    """Show a version: NAME (latest), NAME@LABEL or NAME#VERSION."""
    from controltower.prompts import content_to_dict

    with _store(config, database_url) as store:
        name, number, label = parse_ref(ref)
        version = store.get_version(name, version=number, label=label)
        labels = [lb.label for lb in store.labels(name) if lb.version == version.version]
    if as_json:
        data = {
            "name": version.name,
            "version": version.version,
            "labels": labels,
            "content": content_to_dict(version.content),
            "content_hash": version.content_hash,
            "message": version.message,
            "author": version.author,
            "created_us": version.created_us,
        }
        click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
        return
    click.echo(f"# {version.name}#{version.version}  labels: {', '.join(labels) or '-'}")
    click.echo(f"# {when(version.created_us)} by {version.author or '-'}: {version.message or ''}")
    body = version.source if version.source is not None else dump_prompt(version)
    click.echo(body, nl=not body.endswith("\n"))


def _resolve(store: PromptStore, name: str, ref: str) -> PromptVersion:
    version, label = version_or_label(ref, "ref")
    return store.get_version(name, version=version, label=label)


@prompts.command()
@click.argument("name")
@click.argument("a")
@click.argument("b")
@config_option
def diff(name: str, a: str, b: str, config: str | None, database_url: str | None) -> None:
    """Diff two versions of NAME (numbers or labels): template, then config."""
    with _store(config, database_url) as store:
        changes = diff_versions(_resolve(store, name, a), _resolve(store, name, b))
    click.echo(changes.text or "no difference\n", nl=False)


def _echo_move(move: LabelMove) -> None:
    arms = ", ".join(f"#{arm.version}={arm.weight:g}" for arm in move.split)
    where = f"split {arms}" if arms else f"#{move.version}"
    before = f"#{move.previous_version}" if move.previous_version is not None else "-"
    click.echo(f"{move.prompt}@{move.label}: {before} -> {where} ({move.action})")


@prompts.command()
@click.argument("name")
@click.argument("version", type=int)
@click.argument("label")
@click.option("--protect/--unprotect", default=None, help="protect the label (or stop)")
@force_option
@actor_option
@config_option
def label(
    name: str,
    version: int,
    label: str,
    protect: bool | None,
    force: bool,
    actor: str | None,
    config: str | None,
    database_url: str | None,
) -> None:
    """Point LABEL of NAME at VERSION."""
    with _store(config, database_url) as store:
        move = store.move_label(
            name, label, version, actor=acting_user(actor), force=force, protect=protect
        )
        state = next(lb for lb in store.labels(name) if lb.label == label)
    _echo_move(move)
    if state.protected:
        click.echo(f"{name}@{label} is protected")


@prompts.command()
@click.argument("name")
@click.argument("label")
@force_option
@actor_option
@config_option
def rollback(
    name: str,
    label: str,
    force: bool,
    actor: str | None,
    config: str | None,
    database_url: str | None,
) -> None:
    """Move LABEL of NAME back to the version it pointed at before its last move."""
    with _store(config, database_url) as store:
        _echo_move(store.rollback(name, label, actor=acting_user(actor), force=force))


def parse_arms(arms: tuple[str, ...]) -> list[SplitArm]:
    """VERSION=WEIGHT arguments as split arms."""
    out = []
    for arm in arms:
        version, _, weight = arm.partition("=")
        try:
            out.append(SplitArm(int(version), float(weight)))
        except ValueError:
            raise InvalidRequest(f"{arm!r}: write VERSION=WEIGHT, e.g. 7=90") from None
    return out


@prompts.command()
@click.argument("name")
@click.argument("label")
@click.argument("arms", nargs=-1, required=True)
@force_option
@actor_option
@config_option
def split(
    name: str,
    label: str,
    arms: tuple[str, ...],
    force: bool,
    actor: str | None,
    config: str | None,
    database_url: str | None,
) -> None:
    """Split LABEL of NAME between versions by weight: split NAME LABEL 7=90 8=10."""
    with _store(config, database_url) as store:
        move = store.split_label(
            name, label, parse_arms(arms), actor=acting_user(actor), force=force
        )
    _echo_move(move)


@prompts.command()
@click.argument("name")
@click.argument("label", required=False)
@config_option
def history(name: str, label: str | None, config: str | None, database_url: str | None) -> None:
    """The moves of NAME's labels (or of one LABEL), newest first."""
    with _store(config, database_url) as store:
        moves = store.label_history(name, label)
    for move in moves:
        click.echo(f"{when(move.at_us)}  {move.actor or '-':<12} ", nl=False)
        _echo_move(move)


@prompts.command()
@click.argument("name", required=False)
@click.option("--limit", default=50, show_default=True, type=int)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@config_option
def audit(
    name: str | None, limit: int, as_json: bool, config: str | None, database_url: str | None
) -> None:
    """The audit log of prompt changes (of NAME or NAME@LABEL), newest first."""
    with _store(config, database_url) as store:
        events = store.audit_events(name, limit)
    if as_json:
        click.echo(orjson.dumps([_event_json(e) for e in events]).decode())
        return
    for event in events:
        change = f"{_compact(event.before)} -> {_compact(event.after)}"
        click.echo(
            f"{when(event.at_us)}  {event.actor or '-':<12} {event.action:<22} "
            f"{event.target}  {change}"
        )


def _event_json(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "at_us": event.at_us,
        "actor": event.actor,
        "action": event.action,
        "target": event.target,
        "before": event.before,
        "after": event.after,
    }


def _compact(state: dict[str, Any] | None) -> str:
    return "-" if state is None else orjson.dumps(state).decode()
