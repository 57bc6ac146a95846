"""LLM-as-judge scorers: a rubric, closed QA, factuality, pairwise, and four RAG metrics.

Each YAML name in `JUDGES` maps to a factory `(config, ctx) -> Scorer`. A judge asks the
model through `ctx.client` (the gateway's code path, so every judge call is traced) at
temperature 0, for structured output (a strict JSON schema, or a forced tool call) whose
reasoning comes before the verdict. The data under test goes in delimited blocks the
judge is told are data; `verdicts.parse_reply` reads the reply.

`score()` returns `Verdict.failed` for a reply it cannot read, a sample that lacks what
the judge needs, or any other failure, except a retryable gateway error (`RateLimited`,
`UpstreamError`: `controltower.errors.is_retryable`), which propagates so that the runner
can back off and try the sample again. Other gateway errors (a prompt too long for the
judge, an unknown alias) fail the sample, as another try would fail the same way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from controltower.errors import APIError, is_retryable
from controltower.evals import judge_prompts as prompts
from controltower.evals.judge_prompts import (
    Unjudgeable,
    data_block,
    input_blocks,
    reference_block,
)
from controltower.evals.judges_rag import (
    ANSWER_RELEVANCE,
    CONTEXT_RECALL,
    CONTEXT_RELEVANCE,
    FAITHFULNESS,
    RagMetric,
)
from controltower.evals.scoring import (
    ModelClient,
    ModelReply,
    Sample,
    ScoreKind,
    ScorerConfigError,
    ScorerContext,
    ScorerFactory,
    Verdict,
)
from controltower.evals.templating import TemplateProblem
from controltower.evals.verdicts import (
    IntScale,
    Labels,
    ParsedVerdict,
    ParseOutcome,
    PassFail,
    Unparsable,
    VerdictShape,
    parse_reply,
    response_schema,
    scale_shape,
)

__all__ = [
    "FACTUALITY_SCORES",
    "JUDGES",
    "JudgeCall",
    "JudgeOptions",
    "JudgeScorer",
    "LLMJudge",
    "PairwiseJudge",
    "ScorerFactory",
    "Unjudgeable",
    "answer_relevance_judge",
    "closed_qa_judge",
    "context_recall_judge",
    "context_relevance_judge",
    "factuality_judge",
    "faithfulness_judge",
    "pairwise_judge",
    "rag_judge",
    "rubric_judge",
]

OutputMode = Literal["json-schema", "tool"]
SampleText = Callable[[Sample], str]
Options = TypeVar("Options", bound="JudgeOptions")

TOOL_NAME = "record_verdict"
HASH_CHARS = 16
_REPLY_KEPT = 2000  # characters of an unreadable reply kept in the verdict's details


# --- settings ----------------------------------------------------------------------------


class JudgeOptions(BaseModel):
    """Settings every judge takes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(default="judge", min_length=1)
    output: OutputMode = "json-schema"
    max_tokens: int | None = Field(default=None, ge=1)


class ThresholdOptions(JudgeOptions):
    """A judge scoring 0..1, passed when the score reaches `threshold`."""

    threshold: float | None = Field(default=None, ge=0, le=1)


class RubricOptions(JudgeOptions):
    """`judge`: a rubric graded on an integer range or pass/fail."""

    rubric: str = Field(min_length=1)
    scale: str = "1-5"
    threshold: float | None = None

    @field_validator("scale")
    @classmethod
    def _known_scale(cls, value: str) -> str:
        scale_shape(value)
        return value

    @model_validator(mode="after")
    def _threshold_on_scale(self) -> RubricOptions:
        if self.threshold is None:
            return self
        shape = scale_shape(self.scale)
        if not isinstance(shape, IntScale):
            raise ValueError("a threshold needs a numeric scale (pass-fail decides by itself)")
        if not shape.low <= self.threshold <= shape.high:
            raise ValueError(f"threshold {self.threshold} is outside the scale {self.scale}")
        return self


class CriteriaOptions(JudgeOptions):
    """`closed-qa` and `pairwise`: optional criteria added to the judge's question."""

    criteria: str | None = Field(default=None, min_length=1)


class PairwiseOptions(CriteriaOptions):
    """`pairwise`: the run whose answers the candidate's are compared with."""

    baseline: str | None = Field(default=None, pattern=r"^(run_[A-Za-z0-9_-]+|last|branch:.+)$")


class FactualityOptions(ThresholdOptions):
    """`factuality`: passed unless the answer disagrees, or by `threshold` on the score."""


_FIXES = {
    "model": "a model alias of the gateway's config, such as judge",
    "output": 'write "json-schema" or "tool"',
    "max_tokens": "a whole number of tokens, at least 1",
    "threshold": "a number on the judge's scale (0..1 for a 0..1 score)",
    "rubric": "write what a good answer does, e.g. rubric: Is the answer polite and correct?",
    "scale": 'write "1-5" (any LOW-HIGH range of whole numbers) or "pass-fail"',
    "criteria": "write the question the judge decides, or leave the key out",
    "baseline": "write a run id (run_...), last, or branch:NAME",
}


def _parse_options(kind: str, model: type[Options], config: Any) -> Options:
    """`config` validated as `model`; every problem at once as a `ScorerConfigError`."""
    if config is None:
        config = {}
    if not isinstance(config, dict):
        fix = f"write its settings as a mapping, e.g. {kind}: {{model: judge}}"
        raise ScorerConfigError([((), f"{kind} takes a mapping of settings; fix: {fix}")])
    try:
        return model.model_validate(config)
    except ValidationError as exc:
        raise ScorerConfigError(_problems(exc, model)) from None


def _problems(
    exc: ValidationError, model: type[BaseModel]
) -> list[tuple[tuple[str | int, ...], str]]:
    known = ", ".join(model.model_fields)
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for error in exc.errors():
        path = tuple(error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message, fix = "unknown setting", f"remove it; the settings are {known}"
        elif error["type"] == "missing":
            fix = f"add it: {_FIXES.get(str(path[-1]), 'it is required')}"
        else:
            fix = _FIXES.get(str(path[0]) if path else "", "see the judge's settings")
        problems.append((path, f"{message}; fix: {fix}"))
    return problems


def _compile_text(ctx: ScorerContext, key: str, source: str) -> SampleText:
    """A rubric or criteria compiled as a template of the sample."""
    try:
        compiled: SampleText = ctx.template(source)
    except TemplateProblem as exc:
        raise ScorerConfigError([((key,), f"{exc}; fix: correct the template")]) from None
    return compiled


# --- asking the judge --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JudgeCall:
    """How one judge asks its model: client, alias, reply format and verdict shape."""

    client: ModelClient | None
    model: str
    output: OutputMode
    shape: VerdictShape
    max_tokens: int | None = None
    _rules: str = field(init=False, repr=False, compare=False)
    _format: dict[str, Any] = field(init=False, repr=False, compare=False)

    @classmethod
    def of(cls, options: JudgeOptions, ctx: ScorerContext, shape: VerdictShape) -> JudgeCall:
        """The call a judge's settings describe."""
        return cls(ctx.client, options.model, options.output, shape, options.max_tokens)

    def __post_init__(self) -> None:
        # what every request of this judge shares, built once (the runner sends thousands)
        template = prompts.OUTPUT_TOOL if self.output == "tool" else prompts.OUTPUT_JSON
        note = template.format(tool=TOOL_NAME, key=self.shape.key, describe=self.shape.describe())
        object.__setattr__(self, "_rules", f"\n\n{prompts.DATA_RULES}\n\n{note}")
        object.__setattr__(self, "_format", self._reply_format())

    def system(self, task: str) -> str:
        """The system message: the task, the data rules, and the reply's format."""
        return task + self._rules

    def prompt_hash(self, judge: str, task_source: str) -> str:
        """A stable digest of everything that makes up the judge's prompt."""
        parts = {
            "judge": judge,
            "system": self.system(task_source),
            "closing": prompts.CLOSING,
            "schema": response_schema(self.shape),
            "output": self.output,
        }
        digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode())
        return digest.hexdigest()[:HASH_CHARS]

    def body(self, task: str, blocks: list[str]) -> dict[str, Any]:
        """The chat completion request, at temperature 0."""
        user = "\n\n".join([*blocks, prompts.CLOSING])
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": task + self._rules},
                {"role": "user", "content": user},
            ],
            "temperature": 0,
            **self._format,
        }
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        return body

    def _reply_format(self) -> dict[str, Any]:
        """The request's fields that ask for the verdict's shape: a forced tool call, or
        a JSON schema (read-only: shared by every request of the judge)."""
        schema = response_schema(self.shape)
        if self.output == "tool":
            function = {"name": TOOL_NAME, "parameters": schema, "strict": True}
            function["description"] = "Record the evaluation's reasoning and verdict."
            return {
                "tools": [{"type": "function", "function": function}],
                "tool_choice": {"type": "function", "function": {"name": TOOL_NAME}},
            }
        wrapped = {"name": "verdict", "schema": schema, "strict": True}
        return {"response_format": {"type": "json_schema", "json_schema": wrapped}}

    async def ask(self, task: str, blocks: list[str], name: str) -> tuple[ModelReply, ParseOutcome]:
        """The judge's reply and what it says (a `ParsedVerdict` or an `Unparsable`)."""
        if self.client is None:
            raise Unjudgeable("no model client to call the judge with")
        tags = ["eval:judge", f"judge:{name}"]
        reply = await self.client.chat(self.body(task, blocks), tags=tags)
        return reply, parse_reply(reply, self.shape)


def _judged(reply: ModelReply, alias: str) -> dict[str, Any]:
    """What a verdict's details record about the judge call."""
    details: dict[str, Any] = {"judge_alias": alias}
    if reply.trace_id is not None:
        details["judge_trace_id"] = reply.trace_id
    if reply.cost_usd is not None:
        details["judge_cost_usd"] = reply.cost_usd
    return details


def _reply_model(reply: ModelReply, alias: str) -> str:
    """The model that answered, as the reply reports it (the alias if it does not)."""
    model = reply.data.get("model")
    return model if isinstance(model, str) and model else alias


def _unreadable(reply: ModelReply, outcome: Unparsable, alias: str) -> Verdict:
    """A verdict for a reply that holds no usable verdict."""
    details = {**_judged(reply, alias), "reply": reply.content[:_REPLY_KEPT]}
    return Verdict(
        None, error=outcome.error, judge_model=_reply_model(reply, alias), details=details
    )


class JudgeScorer:
    """What every judge shares: its identity, and a `score` that fails only as it should."""

    name: str
    kind: ScoreKind
    model: str
    prompt_hash: str
    reads_contexts = False  # the RAG judges grade against the retrieved passages
    waits = True

    async def score(self, sample: Sample) -> Verdict:
        """The verdict on one sample (retryable gateway errors propagate, see the module)."""
        try:
            verdict = await self._score(sample)
        except APIError as exc:
            if is_retryable(exc):
                raise
            verdict = Verdict.failed(f"the judge call failed: {exc.message}")
        except Unjudgeable as exc:
            verdict = Verdict.failed(str(exc))
        except Exception as exc:  # the Scorer contract: a failure is a verdict, not a raise
            verdict = Verdict.failed(f"{self.name} failed: {type(exc).__name__}: {exc}")
        if verdict.judge_prompt_hash == self.prompt_hash:
            return verdict
        return dataclasses.replace(verdict, judge_prompt_hash=self.prompt_hash)

    async def _score(self, sample: Sample) -> Verdict:
        raise NotImplementedError


Grade = Callable[[Any, Sample], Verdict]


class LLMJudge(JudgeScorer):
    """A judge asked once per sample: a task, the sample's data blocks, and a grading."""

    def __init__(
        self,
        name: str,
        kind: ScoreKind,
        call: JudgeCall,
        task: tuple[SampleText, str],
        blocks: Callable[[Sample], list[str]],
        grade: Grade,
    ) -> None:
        self.name, self.kind, self.model = name, kind, call.model
        self._call, self._task, self._blocks, self._grade = call, task[0], blocks, grade
        self.prompt_hash = call.prompt_hash(name, task[1])

    async def _score(self, sample: Sample) -> Verdict:
        blocks = self._blocks(sample)  # first, so a sample that lacks data makes no call
        reply, outcome = await self._call.ask(self._task(sample), blocks, self.name)
        if isinstance(outcome, Unparsable):
            return _unreadable(reply, outcome, self.model)
        graded = self._grade(outcome.value, sample)
        return Verdict(
            graded.value,
            graded.passed,
            outcome.reasoning or None,
            graded.error,
            _reply_model(reply, self.model),
            self.prompt_hash,
            {**_judged(reply, self.model), "parsed_from": outcome.source, **graded.details},
        )


def _fixed(text: str) -> tuple[SampleText, str]:
    """A task that is the same for every sample."""
    return (lambda _sample: text), text


def _pass_fail(passed: bool, _sample: Sample) -> Verdict:
    return Verdict.of_bool(passed)


def _at_threshold(value: float, threshold: float | None) -> bool | None:
    """Whether a score passes, when there is a threshold."""
    return None if threshold is None else value >= threshold


# --- judge, closed-qa, factuality ---------------------------------------------------------


def rubric_judge(config: Any, ctx: ScorerContext) -> LLMJudge:
    """`judge`: the answer graded against a rubric on a scale."""
    options = _parse_options("judge", RubricOptions, config)
    shape = scale_shape(options.scale)
    rubric = _compile_text(ctx, "rubric", options.rubric)
    if isinstance(shape, IntScale):
        words = prompts.RUBRIC_RANGE.format(low=shape.low, high=shape.high)
    else:
        words = prompts.RUBRIC_PASS_FAIL

    def task(sample: Sample) -> str:
        return prompts.RUBRIC.format(rubric=rubric(sample), scale=words)

    def blocks(sample: Sample) -> list[str]:
        return [*input_blocks(sample), data_block("answer", sample.text)]

    def grade(value: Any, _sample: Sample) -> Verdict:
        if isinstance(value, bool):
            return Verdict.of_bool(value)
        return Verdict(float(value), _at_threshold(value, options.threshold))

    kind: ScoreKind = "binary" if isinstance(shape, PassFail) else "numeric"
    source = prompts.RUBRIC.format(rubric=options.rubric, scale=words)
    call = JudgeCall.of(options, ctx, shape)
    return LLMJudge("judge", kind, call, (task, source), blocks, grade)


def closed_qa_judge(config: Any, ctx: ScorerContext) -> LLMJudge:
    """`closed-qa`: whether the answer is correct given the reference (`expected`)."""
    options = _parse_options("closed-qa", CriteriaOptions, config)
    name = "closed-qa"
    criteria = _compile_text(ctx, "criteria", options.criteria or "")

    def extra(text: str) -> str:
        return prompts.CLOSED_QA_CRITERIA.format(criteria=text) if text else ""

    def task(sample: Sample) -> str:
        return prompts.CLOSED_QA.format(criteria=extra(criteria(sample)))

    def blocks(sample: Sample) -> list[str]:
        expected = reference_block(sample, name)
        return [*input_blocks(sample), expected, data_block("answer", sample.text)]

    source = prompts.CLOSED_QA.format(criteria=extra(options.criteria or ""))
    call = JudgeCall.of(options, ctx, PassFail())
    return LLMJudge(name, "binary", call, (task, source), blocks, _pass_fail)


FACTUALITY_SCORES = {
    "same": 1.0,
    "immaterial": 1.0,
    "superset": 0.75,
    "subset": 0.5,
    "disagrees": 0.0,
}


def factuality_judge(config: Any, ctx: ScorerContext) -> LLMJudge:
    """`factuality`: the answer's facts against the reference's, as a category and a score.

    Scores: same and immaterial differences 1, superset 0.75 (its extra facts are not
    checked), subset 0.5 (consistent but incomplete), disagrees 0. Passed: no disagreement,
    or the score at `threshold` when one is set.
    """
    options = _parse_options("factuality", FactualityOptions, config)
    name = "factuality"

    def blocks(sample: Sample) -> list[str]:
        expected = reference_block(sample, name)
        return [*input_blocks(sample), expected, data_block("answer", sample.text)]

    def grade(category: str, _sample: Sample) -> Verdict:
        value = FACTUALITY_SCORES[category]
        passed = _at_threshold(value, options.threshold)
        passed = category != "disagrees" if passed is None else passed
        return Verdict(value, passed, details={"category": category})

    call = JudgeCall.of(options, ctx, Labels(tuple(FACTUALITY_SCORES)))
    return LLMJudge(name, "numeric", call, _fixed(prompts.FACTUALITY), blocks, grade)


# --- pairwise ----------------------------------------------------------------------------

Outcome = Literal["win", "loss", "tie"]
PAIRWISE_VALUES: dict[str, float] = {"win": 1.0, "loss": 0.0, "tie": 0.5, "flip": 0.5}


class PairwiseJudge(JudgeScorer):
    """The answer against the baseline's, asked in both orders; a win must survive the swap."""

    # the run compared with: `run_...`, `last` or `branch:NAME` (else the run's --baseline)
    baseline: str | None = None
    needs_baseline = True

    def __init__(self, name: str, call: JudgeCall, criteria: SampleText, source: str) -> None:
        self.name, self.kind, self.model = name, "numeric", call.model
        self._call, self._criteria = call, criteria
        self.prompt_hash = call.prompt_hash(name, prompts.PAIRWISE.format(criteria=source))

    async def _score(self, sample: Sample) -> Verdict:
        if sample.baseline_text is None:
            raise Unjudgeable(f"{self.name} needs the baseline run's answer to this item")
        task = prompts.PAIRWISE.format(criteria=self._criteria(sample))
        # In turn, not at once: the second call is wasted when the first is unreadable
        outcomes: list[Outcome] = []
        replies: list[tuple[ModelReply, ParsedVerdict]] = []
        pair = (sample.text, sample.baseline_text)
        for candidate_first in (True, False):
            a, b = pair if candidate_first else pair[::-1]
            blocks = [*input_blocks(sample), data_block("answer_a", a), data_block("answer_b", b)]
            reply, parsed = await self._call.ask(task, blocks, self.name)
            if isinstance(parsed, Unparsable):
                order = "candidate as A" if candidate_first else "candidate as B"
                return _unreadable(reply, Unparsable(f"{order}: {parsed.error}"), self.model)
            outcomes.append(_outcome(parsed.value, candidate_first))
            replies.append((reply, parsed))
        return self._verdict(outcomes, replies)

    def _verdict(
        self, outcomes: list[Outcome], replies: list[tuple[ModelReply, ParsedVerdict]]
    ) -> Verdict:
        first, second = outcomes
        combined = first if first == second else "flip"
        reason = "\n\n".join(
            f"{label}: {parsed.reasoning}"
            for label, (_, parsed) in zip(
                ("Candidate as A", "Candidate as B"), replies, strict=True
            )
        )
        details: dict[str, Any] = {
            **_judged(replies[0][0], self.model),
            "outcome": combined,
            "orders": {"candidate_a": first, "candidate_b": second},
        }
        models = [_reply_model(reply, self.model) for reply, _ in replies]
        if models[0] != models[1]:
            details["judge_models"] = models
        return Verdict(
            PAIRWISE_VALUES[combined], None, reason, judge_model=models[0], details=details
        )


def _outcome(label: str, candidate_first: bool) -> Outcome:
    if label == "tie":
        return "tie"
    return "win" if (label == "A") == candidate_first else "loss"


def pairwise_judge(config: Any, ctx: ScorerContext) -> PairwiseJudge:
    """`pairwise`: 1.0 a win in both orders, 0.0 a loss in both, 0.5 a tie or a flip."""
    options = _parse_options("pairwise", PairwiseOptions, config)
    source = options.criteria or prompts.PAIRWISE_DEFAULT_CRITERIA
    criteria = _compile_text(ctx, "criteria", source)
    call = JudgeCall.of(options, ctx, Labels(("A", "B", "tie")))
    judge = PairwiseJudge("pairwise", call, criteria, source)
    judge.baseline = options.baseline
    return judge


# --- RAG metrics --------------------------------------------------------------------------


def rag_judge(metric: RagMetric) -> ScorerFactory:
    """The factory of a RAG metric: a 0..1 score, passed at `threshold` when one is set."""

    def factory(config: Any, ctx: ScorerContext) -> LLMJudge:
        options = _parse_options(metric.name, ThresholdOptions, config)

        def blocks(sample: Sample) -> list[str]:
            return metric.blocks(sample)

        def grade(value: Any, sample: Sample) -> Verdict:
            verdict = metric.grade(value, sample)
            if verdict.value is None:
                return verdict
            return dataclasses.replace(
                verdict, passed=_at_threshold(verdict.value, options.threshold)
            )

        call = JudgeCall.of(options, ctx, metric.shape)
        judge = LLMJudge(metric.name, "numeric", call, _fixed(metric.task), blocks, grade)
        judge.reads_contexts = "contexts" in metric.parts
        return judge

    factory.__name__ = factory.__qualname__ = metric.name.replace("-", "_") + "_judge"
    factory.__doc__ = f"`{metric.name}`: {metric.summary}"
    return factory


faithfulness_judge = rag_judge(FAITHFULNESS)
answer_relevance_judge = rag_judge(ANSWER_RELEVANCE)
context_relevance_judge = rag_judge(CONTEXT_RELEVANCE)
context_recall_judge = rag_judge(CONTEXT_RECALL)

JUDGES: dict[str, ScorerFactory] = {
    "judge": rubric_judge,
    "closed-qa": closed_qa_judge,
    "factuality": factuality_judge,
    "pairwise": pairwise_judge,
    "faithfulness": faithfulness_judge,
    "answer-relevance": answer_relevance_judge,
    "context-relevance": context_relevance_judge,
    "context-recall": context_recall_judge,
}
