"""Evaluation harness: datasets, scorers, LLM judges, runs, paired comparisons, CI gates."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["EvalReport", "arun", "run"]

# Imported on first use: the submodules import each other through this package, and
# `import controltower.evals.spec` should not load the whole runner.
_LAZY = {"run": "api", "arun": "api", "EvalReport": "eval_report"}

if TYPE_CHECKING:
    from controltower.evals.api import arun, run
    from controltower.evals.eval_report import EvalReport


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(f"controltower.evals.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'controltower.evals' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
