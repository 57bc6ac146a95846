"""The scorer types an eval file may name: the built-in checks and judges, and plugins.

Built-ins register through the same entry point group as third-party scorers
(`controltower.scorers`); each entry point names a mapping of YAML names to factories.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from controltower import plugins
from controltower.evals.custom import negate as negate_scorer
from controltower.evals.scoring import (
    Sample,
    ScoreKind,
    Scorer,
    ScorerConfigError,
    ScorerContext,
    ScorerFactory,
    Verdict,
)


class Named:
    """A scorer under the name the eval file gives it (its other attributes pass through)."""

    def __init__(self, inner: Scorer, name: str) -> None:
        self.inner = inner
        self.name = name
        self.kind: ScoreKind = inner.kind

    async def score(self, sample: Sample) -> Verdict:
        """The inner scorer's verdict."""
        return await self.inner.score(sample)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.inner, attribute)


class ScorerRegistry:
    """Factories by the name an eval file gives a scorer type."""

    def __init__(self, factories: Mapping[str, ScorerFactory]) -> None:
        self._factories = dict(factories)

    @classmethod
    def default(cls) -> ScorerRegistry:
        """Every scorer type registered through entry points (built-ins included)."""
        return cls(_registered())

    def names(self) -> list[str]:
        """The scorer types, sorted."""
        return sorted(self._factories)

    def with_scorers(self, extra: Mapping[str, ScorerFactory]) -> ScorerRegistry:
        """This registry with more types (e.g. `custom=` functions from Python)."""
        return ScorerRegistry({**self._factories, **extra})

    def build(
        self, kind: str, config: Any, ctx: ScorerContext, *, name: str, negate: bool = False
    ) -> Scorer:
        """A scorer of a type; ScorerConfigError for bad settings."""
        factory = self._factories.get(kind)
        if factory is None:
            raise ScorerConfigError([((), f"unknown scorer type {kind!r}")])
        made = factory(config, ctx)
        if negate:
            return negate_scorer(made, name)
        return made if made.name == name else Named(made, name)


@cache
def _registered() -> dict[str, ScorerFactory]:
    found: dict[str, ScorerFactory] = {}
    for table in plugins.scorer_tables():
        found.update(table)
    return found
