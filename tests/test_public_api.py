"""Each package's curated `__all__` names exactly what it exports."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = [
    "controltower",
    "controltower.domain",
    "controltower.settings",
    "controltower.cost",
    "controltower.tracing",
    "controltower.ingest",
    "controltower.prompts",
    "controltower.evals",
    "controltower.providers",
    "controltower.store",
    "controltower.gateway",
    "controltower.server",
    "controltower.cli",
    "controltower.sdk",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_names_exist_and_are_public(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert sorted(exported) == sorted(set(exported)), "duplicates in __all__"
    for item in exported:
        assert hasattr(module, item), f"{name}.__all__ names {item!r}, which is missing"
        assert not item.startswith("_") or item == "__version__"


def test_every_builtin_provider_is_registered() -> None:
    from controltower.plugins import provider_class, provider_names

    assert provider_names() == ["anthropic", "mock", "openai"]
    for name in provider_names():
        assert callable(provider_class(name))


def test_the_eval_runtimes_are_registered() -> None:
    from controltower.gateway.eval_runtime import open_local_runtime, open_remote_runtime
    from controltower.plugins import runtime_opener

    assert runtime_opener("local") is open_local_runtime
    assert runtime_opener("remote") is open_remote_runtime
