"""Scores: feedback on a trace or span from users, humans, judges or code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ScoreSource = Literal["user", "human", "judge", "code", "api"]
ScoreType = Literal["numeric", "boolean", "categorical"]
SCORE_SOURCES: tuple[ScoreSource, ...] = ("user", "human", "judge", "code", "api")


@dataclass(slots=True)
class Score:
    """One named value on a trace (or one span of it): a thumb, a number or a category."""

    id: str
    trace_id: str
    name: str
    value: float | bool | str
    created_us: int
    span_id: str | None = None
    source: ScoreSource = "api"
    comment: str | None = None
    author: str | None = None
    project: str = "default"

    @property
    def data_type(self) -> ScoreType:
        """numeric, boolean or categorical, from the value's type."""
        if isinstance(self.value, bool):
            return "boolean"
        if isinstance(self.value, str):
            return "categorical"
        return "numeric"
