"""What every command shares: loading settings, opening the store, reporting errors."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click

from controltower.errors import ConfigError, ControlTowerError
from controltower.plugins import provider_names
from controltower.settings import Settings, load_settings, with_demo_model


def fail(error: ControlTowerError) -> NoReturn:
    """Print every problem of an error and exit with status 2."""
    problems = error.problems if isinstance(error, ConfigError) else [str(error)]
    click.secho(f"error: {len(problems)} problem(s) found", fg="red", err=True)
    for problem in problems:
        click.echo(f"  - {problem}", err=True)
    sys.exit(2)


def load(config: str | None) -> Settings:
    """Settings from a file (or the demo model when none is configured)."""
    try:
        settings = load_settings(config, known_providers=provider_names())
    except ConfigError as exc:
        fail(exc)
    return with_demo_model(settings)


def database_url(config: str | None) -> str:
    """The database URL of the config (or the default SQLite file)."""
    from controltower.server.run import DEFAULT_DATABASE_URL

    return load(config).database_url or DEFAULT_DATABASE_URL


def open_trace_store(config: str | None) -> Any:
    """The trace store at the config's database URL, migrated."""
    from controltower.store import open_store

    return open_store(database_url(config))
