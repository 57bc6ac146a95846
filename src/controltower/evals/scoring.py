"""What a scorer sees and what it returns: one seam for checks, metrics and judges.

A scorer is one small object with an async `score(sample) -> Verdict`. Programmatic
checks, embedding similarity and LLM judges all implement it; judges and embeddings reach
models only through the `ModelClient` they are built with, which is the gateway's code
path (in process or over HTTP), so every call they make is traced.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from controltower.domain.dataset import DatasetItem
from controltower.domain.evaluation import Verdict

__all__ = [
    "ModelClient",
    "ModelReply",
    "Sample",
    "ScoreKind",
    "Scorer",
    "ScorerConfigError",
    "ScorerContext",
    "ScorerFactory",
    "Verdict",
]

ScoreKind = Literal["binary", "numeric"]


@dataclass(frozen=True, slots=True)
class Sample:
    """One answer of the target for one item (and one repeat of it)."""

    item: DatasetItem
    output: Any  # the answer: text, or the parsed JSON / structured value a target returned
    text: str  # the answer as text (the assistant message content, or the output dumped)
    repeat: int = 0
    tool_calls: tuple[dict[str, Any], ...] = ()  # [{"name": ..., "arguments": {...}}, ...]
    latency_ms: float | None = None
    cost_usd: float | None = None
    trace_id: str | None = None
    contexts: tuple[str, ...] = ()  # retrieved passages (retrieval spans, or the item's)
    input_text: str = ""  # the question as text, for judges
    baseline_text: str | None = None  # the baseline run's answer to the item (pairwise judges)


class Scorer(Protocol):
    """Scores one sample; `name` keys its results, `kind` says how runs are compared."""

    name: str
    kind: ScoreKind

    async def score(self, sample: Sample) -> Verdict:
        """The verdict on one sample (errors are returned as `Verdict.failed`, not raised)."""
        ...


@dataclass(frozen=True, slots=True)
class ModelReply:
    """A chat completion answered through the gateway, with the trace it was recorded in."""

    data: dict[str, Any]  # the OpenAI chat.completion JSON
    trace_id: str | None = None
    latency_ms: float | None = None
    cost_usd: float | None = None
    route: dict[str, Any] = field(default_factory=dict)  # prompt version, deployment, model
    # the first choice's assistant message ({} when there is none), read once
    message: dict[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        choices = self.data.get("choices") if isinstance(self.data, dict) else None
        first = choices[0] if isinstance(choices, list) and choices else None
        message = first.get("message") if isinstance(first, dict) else None
        object.__setattr__(self, "message", message if isinstance(message, dict) else {})

    @property
    def content(self) -> str:
        """The first choice's text ("" when it answered with a tool call or nothing)."""
        content = self.message.get("content")
        return content if isinstance(content, str) else ""


class ModelClient(Protocol):
    """Chat completions and embeddings through the gateway (in process or over HTTP).

    Raises `controltower.errors.APIError` subclasses as the gateway does: `RateLimited`
    for a 429, so that the runner can back off and lower its concurrency.
    """

    async def chat(
        self,
        body: dict[str, Any],
        *,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        model: str | None = None,
    ) -> ModelReply:
        """Answer one chat completion body (OpenAI format, `model` an alias or a prompt
        reference); `model` sends a prompt's rendered body to another alias."""
        ...

    async def embed(self, model: str, texts: list[str]) -> list[list[float]]:
        """One embedding vector per text."""
        ...

    async def resolve(self, model: str) -> dict[str, Any]:
        """What an alias or prompt reference resolves to now: the prompt version, the
        deployments (provider, model) that may answer; for the run's record."""
        ...


@dataclass(slots=True)
class ScorerContext:
    """What a scorer factory is built with: the model client (for judges and embeddings)
    and the eval file's template compiler."""

    client: ModelClient | None = None
    templates: Any = None  # a controltower.evals.templating.SampleTemplates

    def template(self, source: str) -> Any:
        """`source` compiled to a function of a sample (see `SampleTemplates.compile`)."""
        if self.templates is None:
            from controltower.evals.templating import SampleTemplates

            self.templates = SampleTemplates()
        return self.templates.compile(source)


ScorerFactory = Callable[[Any, ScorerContext], Scorer]  # (the YAML value, context) -> scorer


class ScorerConfigError(ValueError):
    """A scorer's settings in an eval file are wrong; `problems` are (path, message) pairs.

    `path` is relative to the scorer's value (`()` for the value itself, `("mode",)` for
    one of its keys), so the loader can point at the file's line.
    """

    def __init__(self, problems: list[tuple[tuple[str | int, ...], str]]) -> None:
        super().__init__("; ".join(message for _, message in problems))
        self.problems = problems
