"""The one place plugins are found: entry points, through which built-ins register too."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from controltower.errors import ConfigError

PROVIDER_GROUP = "controltower.providers"
SCORER_GROUP = "controltower.scorers"
RUNTIME_GROUP = "controltower.runtimes"

# what pyproject.toml registers, for a source checkout that was never pip-installed
_BUILTIN_PROVIDERS = {
    "openai": "controltower.providers.openai:OpenAIProvider",
    "anthropic": "controltower.providers.anthropic:AnthropicProvider",
    "mock": "controltower.providers.mock:MockProvider",
}


@cache
def _provider_targets() -> dict[str, str]:
    found = {ep.name: ep.value for ep in entry_points(group=PROVIDER_GROUP)}
    return found or dict(_BUILTIN_PROVIDERS)


def provider_names() -> list[str]:
    """Names usable as `provider:` in a deployment."""
    return sorted(_provider_targets())


def provider_class(name: str) -> Callable[..., Any]:
    """The provider class registered under `name`."""
    target = _provider_targets().get(name)
    if target is None:
        raise ConfigError([f"unknown provider {name!r}; use one of {provider_names()}"])
    module_name, _, attr = target.partition(":")
    module = __import__(module_name, fromlist=[attr])
    return getattr(module, attr)  # type: ignore[no-any-return]


# each names a mapping of scorer type (as eval files spell it) to its factory
_BUILTIN_SCORERS = {
    "checks": "controltower.evals.checks:CHECKS",
    "judges": "controltower.evals.judges:JUDGES",
}


def scorer_tables() -> list[dict[str, Any]]:
    """The mappings of scorer type to factory that entry points register (built-ins first)."""
    found = {ep.name: ep.value for ep in entry_points(group=SCORER_GROUP)}
    targets = {**_BUILTIN_SCORERS, **found}
    tables = []
    for name in sorted(targets, key=lambda n: (n not in _BUILTIN_SCORERS, n)):
        module_name, _, attr = targets[name].partition(":")
        module = __import__(module_name, fromlist=[attr])
        tables.append(dict(getattr(module, attr)))
    return tables


# each names a function (config, database_url, **options) -> EvalRuntime; `local` is the
# default, `remote` takes gateway_url= and api_key=
_BUILTIN_RUNTIMES = {
    "local": "controltower.gateway.eval_runtime:open_local_runtime",
    "remote": "controltower.gateway.eval_runtime:open_remote_runtime",
}


def runtime_opener(name: str = "local") -> Callable[..., Any]:
    """The function that opens the eval runtime registered under `name`."""
    found = {ep.name: ep.value for ep in entry_points(group=RUNTIME_GROUP)}
    target = {**_BUILTIN_RUNTIMES, **found}.get(name)
    if target is None:
        raise ConfigError([f"unknown eval runtime {name!r}; register it under {RUNTIME_GROUP}"])
    module_name, _, attr = target.partition(":")
    module = __import__(module_name, fromlist=[attr])
    return getattr(module, attr)  # type: ignore[no-any-return]
