"""The RAG judges as data: what each is shown, the verdict it gives, and its 0..1 score.

`judges.rag_judge` turns each `RagMetric` into a scorer factory. The contexts are the
sample's retrieved passages (`Sample.contexts`: the trace's retrieval spans, or the
item's); the lists the judge returns (claims, passages, statements) are counted here
rather than asking the judge for a number, which judges give less consistently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from controltower.evals import judge_prompts as prompts
from controltower.evals.scoring import Sample, Verdict
from controltower.evals.verdicts import IntScale, Tally, VerdictShape

__all__ = ["ANSWER_RELEVANCE", "CONTEXT_RECALL", "CONTEXT_RELEVANCE", "FAITHFULNESS", "RagMetric"]

RagPart = Literal["input", "reference", "contexts", "answer"]
_LISTED = 20  # items named in a verdict's details (the unsupported claims, ...)


@dataclass(frozen=True, slots=True)
class RagMetric:
    """One RAG judge: its prompt, the blocks it is shown in order, and its grading."""

    name: str
    summary: str
    task: str
    shape: VerdictShape
    parts: tuple[RagPart, ...]
    grade: Callable[[Any, Sample], Verdict]  # the parsed verdict's value -> a 0..1 Verdict
    needs_question: bool = False

    def blocks(self, sample: Sample) -> list[str]:
        """The data blocks shown to the judge, in order; `Unjudgeable` when one is missing."""
        blocks: list[str] = []
        for part in self.parts:
            if part == "input":
                required = self.name if self.needs_question else None
                blocks += prompts.input_blocks(sample, required_by=required)
            elif part == "reference":
                blocks.append(prompts.reference_block(sample, self.name))
            elif part == "contexts":
                blocks += prompts.context_blocks(sample, self.name)
            else:
                blocks.append(prompts.data_block("answer", sample.text))
        return blocks


def _faithfulness(rows: tuple[tuple[Any, bool], ...], _sample: Sample) -> Verdict:
    # An answer that makes no claim ("I don't know") has nothing unsupported in it
    supported = sum(flag for _, flag in rows)
    value = supported / len(rows) if rows else 1.0
    unsupported = [str(claim) for claim, flag in rows if not flag][:_LISTED]
    details = {"claims": len(rows), "supported": supported, "unsupported": unsupported}
    return Verdict(value, details=details)


def _answer_relevance(score: int, _sample: Sample) -> Verdict:
    return Verdict((score - 1) / 4, details={"score": score})


def _context_relevance(rows: tuple[tuple[Any, bool], ...], sample: Sample) -> Verdict:
    count = len(sample.contexts)
    rated = {index: flag for item, flag in rows if (index := _index(item)) is not None}
    if len(rows) != count or set(rated) != set(range(1, count + 1)):
        shown = sorted(str(item) for item, _ in rows)
        return Verdict.failed(f"the judge rated passages {shown}, not each of 1 to {count} once")
    relevant = sorted(index for index, flag in rated.items() if flag)
    details = {"passages": count, "relevant": relevant}
    return Verdict(len(relevant) / count, details=details)


def _context_recall(rows: tuple[tuple[Any, bool], ...], _sample: Sample) -> Verdict:
    if not rows:
        return Verdict.failed("the judge found no statements in the reference answer")
    attributed = sum(flag for _, flag in rows)
    missing = [str(statement) for statement, flag in rows if not flag][:_LISTED]
    details = {"statements": len(rows), "attributed": attributed, "missing": missing}
    return Verdict(attributed / len(rows), details=details)


def _index(item: Any) -> int | None:
    try:
        return int(str(item).strip())
    except ValueError:
        return None


FAITHFULNESS = RagMetric(
    name="faithfulness",
    summary="the share of the answer's claims that the retrieved contexts support.",
    task=prompts.FAITHFULNESS,
    shape=Tally("claims", "claim", "supported"),
    parts=("input", "contexts", "answer"),
    grade=_faithfulness,
)

ANSWER_RELEVANCE = RagMetric(
    name="answer-relevance",
    summary="how directly and completely the answer addresses the question (1-5 as 0..1).",
    task=prompts.ANSWER_RELEVANCE,
    shape=IntScale(1, 5),
    parts=("input", "answer"),
    grade=_answer_relevance,
    needs_question=True,
)

CONTEXT_RELEVANCE = RagMetric(
    name="context-relevance",
    summary="the share of the retrieved passages that are relevant to the question.",
    task=prompts.CONTEXT_RELEVANCE,
    shape=Tally("passages", "passage", "relevant", item_type="integer"),
    parts=("input", "contexts"),
    grade=_context_relevance,
    needs_question=True,
)

CONTEXT_RECALL = RagMetric(
    name="context-recall",
    summary="the share of the reference answer's statements the retrieved contexts hold.",
    task=prompts.CONTEXT_RECALL,
    shape=Tally("statements", "statement", "attributed"),
    parts=("input", "contexts", "reference"),
    grade=_context_recall,
)
