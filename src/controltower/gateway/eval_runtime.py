"""The runtimes of `controltower.evals.run`: the in-process gateway on the store (`local`,
the default), or a running gateway over HTTP (`remote`).

The evals layer cannot import the gateway, so it finds these functions through the
`controltower.runtimes` entry point (`controltower.plugins.runtime_opener`), the seam a
plugin uses to run evals elsewhere.
"""

from __future__ import annotations

import os

from controltower.errors import ConfigError
from controltower.evals.session import EvalRuntime
from controltower.gateway.local import local_runtime
from controltower.gateway.remote import remote_runtime
from controltower.plugins import provider_names
from controltower.settings import (
    DATABASE_URL_ENV,
    DEFAULT_DATABASE_URL,
    Settings,
    check_config,
    with_demo_model,
)
from controltower.store import open_eval_store, open_store


def open_local_runtime(config: str | None = None, database_url: str | None = None) -> EvalRuntime:
    """An in-process gateway from the config file, on the store `controltower eval run` uses.

    The database is the URL given, else $CONTROLTOWER_DATABASE_URL, else the config's
    `database_url`, else `./controltower.db`, as on the command line.
    """
    settings = _settings(config)
    store = open_store(_database_url(settings, database_url))
    runtime = local_runtime(settings, store)
    runtime.on_close.append(store.close)
    return runtime


def open_remote_runtime(
    config: str | None = None,
    database_url: str | None = None,
    *,
    gateway_url: str,
    api_key: str | None = None,
) -> EvalRuntime:
    """Model calls to the gateway at `gateway_url`; runs stored as `open_local_runtime`
    stores them (the config gives only the database; the gateway has its own models)."""
    settings = _settings(config)
    store = open_eval_store(_database_url(settings, database_url))
    runtime = remote_runtime(gateway_url, api_key, store)
    runtime.on_close.append(store.engine.dispose)
    return runtime


def _settings(config: str | None) -> Settings:
    report = check_config(config, known_providers=provider_names())
    if report.settings is None:
        raise ConfigError(report.problems)
    return with_demo_model(report.settings)


def _database_url(settings: Settings, given: str | None) -> str:
    return (
        given or os.environ.get(DATABASE_URL_ENV) or settings.database_url or DEFAULT_DATABASE_URL
    )
