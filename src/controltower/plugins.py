"""The one place plugins are found: entry points, through which built-ins register too."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from controltower.errors import ConfigError

PROVIDER_GROUP = "controltower.providers"

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
