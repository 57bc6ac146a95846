"""Commands: serve, config check, db upgrade, traces, users delete, retention run, prompts,
datasets, eval, review."""

from __future__ import annotations

import sys

import click
import orjson

from controltower.cli.common import (
    config_option,
    database_url_option,
    fail,
    load,
    open_trace_store,
    say_database,
    warn,
)
from controltower.cli.datasets import datasets
from controltower.cli.eval_calibrate import calibrate_command
from controltower.cli.evals import eval_group
from controltower.cli.keys import keys
from controltower.cli.prompts import prompts
from controltower.cli.review import review
from controltower.cli.spend import spend
from controltower.errors import ConfigError, ControlTowerError
from controltower.settings import PORT_ENV, Settings


@click.group()
@click.version_option(package_name="controltower")
def main() -> None:
    """controltower: an OpenAI-compatible LLM gateway that traces every call."""


@main.command()
@config_option
@database_url_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--port",
    default=4000,
    show_default=True,
    envvar=PORT_ENV,
    show_envvar=True,
    type=click.IntRange(1, 65535),
)
@click.option(
    "--log-level",
    default="warning",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="processes serving the same port (state such as cooldowns is per process)",
)
def serve(
    config: str | None,
    database_url: str | None,
    host: str,
    port: int,
    log_level: str,
    workers: int,
) -> None:
    """Start the gateway (a demo mock model when no config is given)."""
    import logging

    from controltower.server import serve as run

    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    settings = load(config, show_warnings=True)
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})
    try:
        run(
            settings,
            host=host,
            port=port,
            log_level=log_level,
            workers=workers,
            config_path=config,
            announce=lambda: _announce(settings, host, port),
        )
    except ControlTowerError as exc:
        fail(exc)


def _announce(settings: Settings, host: str, port: int) -> None:
    from controltower.settings import DEFAULT_DATABASE_URL

    base = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    click.echo(f"models: {', '.join(m.name for m in settings.models)}", err=True)
    say_database(settings.database_url or DEFAULT_DATABASE_URL)
    click.echo(f"UI: {base}/   API: {base}/v1   (Ctrl+C stops)", err=True)


@main.group()
def config() -> None:
    """Work with config files."""


@config.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
def config_check(file: str) -> None:
    """Validate FILE: every mistake, by line, with the file, the field and the fix."""
    from controltower.plugins import provider_names
    from controltower.settings import check_config, with_demo_model

    report = check_config(file, known_providers=provider_names())
    warn(report)
    if report.settings is None:
        fail(ConfigError(report.problems))
    settings = with_demo_model(report.settings)
    total = sum(len(m.deployments) for m in settings.models)
    click.echo(f"{file}: ok ({len(settings.models)} models, {total} deployments)")


@main.group()
def db() -> None:
    """Manage the database."""


@db.command("upgrade")
@config_option
@database_url_option
def db_upgrade(config: str | None, database_url: str | None) -> None:
    """Create the database, or migrate it to the newest schema."""
    from controltower.cli.common import open_at
    from controltower.store import create_store_engine, current_revision, upgrade

    engine = open_at(config, database_url, create_store_engine, must_exist=False)
    try:
        upgrade(engine)
        click.echo(f"database at revision {current_revision(engine)}")
    finally:
        engine.dispose()


@main.group()
def traces() -> None:
    """Read recorded traces."""


@traces.command("list")
@config_option
@database_url_option
@click.option("--limit", default=20, show_default=True, type=int)
@click.option("--cursor", default=None)
@click.option("--since", help="ISO time, or a time ago: 30m, 24h, 7d")
@click.option("--until", help="ISO time, or a time ago")
@click.option("--name", help="trace name")
@click.option("--user", help="user id")
@click.option("--session", help="session id")
@click.option("--model", help="model of a generation in the trace")
@click.option("--status", type=click.Choice(["ok", "error"]))
@click.option("--tags", help="comma-separated; all must be present")
@click.option("--metadata", help="key or key=value, comma-separated")
@click.option("--min-cost", help="USD")
@click.option("--min-latency", help="ms, or a duration like 2s")
@click.option("--search", "q", help="text in the input or output")
@click.option("--project")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
def traces_list(
    config: str | None,
    database_url: str | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
    **filters: str | None,
) -> None:
    """List traces, newest first, filtered like the API and the web UI."""
    from controltower.cli.render import trace_table
    from controltower.domain import now_us
    from controltower.tracing.params import trace_filter

    params = {key: value for key, value in filters.items() if value is not None}
    store = open_trace_store(config, database_url, must_exist=True)
    try:
        where = trace_filter(params, now_us())
        data, next_cursor = store.list_traces(limit, cursor, where)
    except ControlTowerError as exc:
        fail(exc)
    finally:
        store.close()
    if as_json:
        click.echo(orjson.dumps({"data": data, "next_cursor": next_cursor}).decode())
        return
    trace_table(data, next_cursor)


@traces.command("show")
@click.argument("trace_id")
@config_option
@database_url_option
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a tree")
def traces_show(trace_id: str, config: str | None, database_url: str | None, as_json: bool) -> None:
    """Show one trace with its spans."""
    from controltower.cli.render import trace_tree

    store = open_trace_store(config, database_url, must_exist=True)
    try:
        trace = store.get_trace(trace_id)
    finally:
        store.close()
    if trace is None:
        click.secho(f"no trace with id {trace_id!r}", fg="red", err=True)
        sys.exit(1)
    if as_json:
        click.echo(orjson.dumps(trace, option=orjson.OPT_INDENT_2).decode())
        return
    trace_tree(trace)


@traces.command("dead-letters")
@config_option
@database_url_option
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="print JSON lines with the payloads")
def traces_dead_letters(
    config: str | None, database_url: str | None, limit: int, as_json: bool
) -> None:
    """Traces the store refused (set aside with their error), newest first."""
    from dataclasses import asdict

    from controltower.cli.render import safe
    from controltower.store.serialize import us_to_iso

    store = open_trace_store(config, database_url, must_exist=True)
    try:
        letters = store.dead_letters(limit)
    finally:
        store.close()
    if as_json:
        for letter in letters:
            click.echo(orjson.dumps(asdict(letter)).decode())
        return
    if not letters:
        click.echo("no dead letters: every trace was stored")
        return
    for letter in letters:
        line = f"{us_to_iso(letter.created_us)}  {letter.trace_id}  {letter.error[:200]}"
        click.echo(safe(line))


@main.group()
def users() -> None:
    """End users' data."""


@users.command("delete")
@click.argument("user_id")
@config_option
@database_url_option
@click.option("--project", default=None, help="only this project's traces")
@click.confirmation_option(prompt="Delete every trace, span and score of this user?")
def users_delete(
    user_id: str, config: str | None, database_url: str | None, project: str | None
) -> None:
    """Delete all data of USER_ID (for a GDPR erasure request) and print the counts."""
    store = open_trace_store(config, database_url, must_exist=True)
    try:
        deleted = store.delete_user_data(user_id, project)
    finally:
        store.close()
    click.echo(orjson.dumps({"user_id": user_id, "deleted": deleted}).decode())


@main.group()
def retention() -> None:
    """Apply the retention periods of the config."""


@retention.command("run")
@config_option
@database_url_option
def retention_run(config: str | None, database_url: str | None) -> None:
    """Delete now what is past its retention period, and print the counts."""
    from controltower.tracing import RetentionPolicy

    settings = load(config)
    policy = RetentionPolicy(settings.retention.days, dict(settings.retention.projects))
    if not policy.active:
        click.echo("no retention period is configured: nothing to delete")
        return
    store = open_trace_store(config, database_url, must_exist=True)
    try:
        deleted = policy.sweep(store)
    finally:
        store.close()
    click.echo(orjson.dumps({"deleted": deleted}).decode())


main.add_command(prompts)
main.add_command(datasets)
main.add_command(eval_group)
eval_group.add_command(calibrate_command)
main.add_command(review)
main.add_command(keys)
main.add_command(spend)
