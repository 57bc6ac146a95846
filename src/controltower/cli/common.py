"""What every command shares: loading settings, opening the store, reporting errors."""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from controltower.errors import ConfigError, ControlTowerError
from controltower.plugins import provider_names
from controltower.settings import (
    DATABASE_URL_ENV,
    DEFAULT_DATABASE_URL,
    ConfigReport,
    Settings,
    check_config,
    mask_url,
    with_demo_model,
)

CONFIG_HELP = "YAML config file (models, database_url, master_key …)"
T = TypeVar("T")

config_option = click.option("--config", "-c", type=click.Path(dir_okay=False), help=CONFIG_HELP)
database_url_option = click.option(
    "--database-url",
    envvar=DATABASE_URL_ENV,
    show_envvar=True,
    help=f"SQLAlchemy URL of the store (default: the config's database_url, else "
    f"{DEFAULT_DATABASE_URL})",
)


def fail(error: ControlTowerError) -> NoReturn:
    """Print every problem of an error and exit with status 2."""
    problems = error.problems if isinstance(error, ConfigError) else [str(error)]
    click.secho(f"error: {len(problems)} problem(s) found", fg="red", err=True)
    for problem in problems:
        click.echo(f"  - {problem}", err=True)
    sys.exit(2)


def warn(report: ConfigReport) -> None:
    """Print the warnings of a config check."""
    for warning in report.warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)


def load(config: str | None, *, show_warnings: bool = False) -> Settings:
    """Settings from a file (or the demo model when none is configured)."""
    report = check_config(config, known_providers=provider_names())
    if show_warnings:
        warn(report)
    if report.settings is None:
        fail(ConfigError(report.problems))
    return with_demo_model(report.settings)


def database_url(config: str | None, given: str | None = None) -> str:
    """The database URL given, else the config's, else the default SQLite file."""
    return given or load(config).database_url or DEFAULT_DATABASE_URL


def say_database(url: str) -> None:
    """Tell which database a command uses (its password masked), on stderr."""
    click.echo(f"database: {mask_url(url)}", err=True)


def require_existing(url: str) -> None:
    """Exit with a hint when a SQLite database file does not exist: a read creates none."""
    path = sqlite_path(url)
    if path is None or path.exists():
        return
    fail(
        ControlTowerError(
            f"no database at {path.resolve()}: nothing was recorded there; fix: pass "
            f"--database-url (or set {DATABASE_URL_ENV}, or database_url in --config) to read "
            "another one, or run `controltower serve` first"
        )
    )


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL; None for other databases and in-memory SQLite."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return None  # the store names the mistake when it opens the URL
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    return None if database.startswith("file:") else Path(database).expanduser()


def open_at(
    config: str | None, given: str | None, opener: Callable[[str], T], *, must_exist: bool
) -> T:
    """`opener` at the database of the command, said on stderr; errors end the command."""
    from sqlalchemy.exc import OperationalError

    url = database_url(config, given)
    say_database(url)
    if must_exist:
        require_existing(url)
    try:
        return opener(url)
    except ControlTowerError as exc:
        fail(exc)
    except OperationalError as exc:
        fail(ControlTowerError(f"cannot open the database {mask_url(url)}: {exc.orig}"))


def open_trace_store(config: str | None, given: str | None = None, *, must_exist: bool) -> Any:
    """The trace store of the command, migrated; a read never creates a new SQLite file."""
    from controltower.store import open_store

    return open_at(config, given, open_store, must_exist=must_exist)


def acting_user(given: str | None) -> str | None:
    """Who does a change: the name given, else $CONTROLTOWER_USER, else the login name."""
    if given:
        return given
    try:
        return os.environ.get("CONTROLTOWER_USER") or getpass.getuser()
    except (KeyError, OSError):  # no login name in some containers
        return None


def when(us: int) -> str:
    """A time in microseconds as `YYYY-MM-DD HH:MM:SS` (UTC)."""
    return datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%S")
