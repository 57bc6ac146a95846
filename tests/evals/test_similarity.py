"""Similarity scorers: edit distance, fuzzy ratios, and embedding cosine via a fake client."""

from __future__ import annotations

import math
from typing import Any

import pytest

from controltower.domain.dataset import DatasetItem
from controltower.errors import InvalidRequest, RateLimited
from controltower.evals.checks import build_check
from controltower.evals.scoring import (
    ModelReply,
    Sample,
    Scorer,
    ScorerConfigError,
    ScorerContext,
    Verdict,
)
from controltower.evals.similarity import MAX_EDIT_CHARS


def sample(text: str, expected: Any = None) -> Sample:
    return Sample(item=DatasetItem(id="i1", expected=expected), output=text, text=text)


def check(spec: dict[str, Any], client: Any = None) -> Scorer:
    return build_check(spec, ScorerContext(client=client))


async def verdict(spec: dict[str, Any], text: str, expected: Any = None) -> Verdict:
    return await check(spec).score(sample(text, expected))


def problems(spec: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    with pytest.raises(ScorerConfigError) as caught:
        check(spec)
    return caught.value.problems


# --- levenshtein ---------------------------------------------------------------------------


async def test_levenshtein_is_a_normalised_similarity() -> None:
    found = await verdict({"levenshtein": "kitten"}, "sitting")
    assert found.passed is None
    assert found.value == pytest.approx(1 - 3 / 7)
    assert found.details == {"distance": 3}


async def test_levenshtein_passes_by_max_edits_and_min_similarity() -> None:
    assert (await verdict({"levenshtein": {"value": "kitten", "max": 3}}, "sitting")).passed
    failed = await verdict({"levenshtein": {"value": "kitten", "max": 2}}, "sitting")
    assert failed.passed is False
    assert failed.reason == "3 edits from 'kitten': 'sitting'"
    assert not (await verdict({"levenshtein": {"value": "kitten", "min": 0.9}}, "sitting")).passed
    both = {"levenshtein": {"value": "kitten", "max": 3, "min": 0.9}}
    assert (await verdict(both, "sitting")).passed is False


async def test_levenshtein_edges() -> None:
    assert (await verdict({"levenshtein": {"value": "", "max": 0}}, "  ")).value == 1.0
    empty = await verdict({"levenshtein": {"value": "abc", "max": 0}}, "")
    assert empty.value == 0.0 and empty.passed is False
    assert (await verdict({"levenshtein": {"value": "ÉTÉ", "case": False}}, "été")).value == 1.0
    assert (await verdict({"levenshtein": None}, "42", expected=42)).value == 1.0
    listed = await verdict({"levenshtein": None}, "a", expected=["a"])
    assert listed.error and "needs an expected text" in listed.error


async def test_levenshtein_is_bounded_on_huge_answers() -> None:
    found = await verdict({"levenshtein": "x"}, "y" * 1_000_000)
    assert found.details["truncated"] is True
    assert found.details["distance"] == MAX_EDIT_CHARS


@pytest.mark.parametrize(
    ("spec", "loc", "words"),
    [
        ({"levenshtein": {"value": "a", "max": 1.5}}, ("levenshtein", "max"), "whole number"),
        ({"levenshtein": {"value": "a", "max": -1}}, ("levenshtein", "max"), "at least 0"),
        ({"levenshtein": {"value": "a", "min": 2}}, ("levenshtein", "min"), "from 0 to 1 (got 2)"),
        ({"levenshtein": {"value": {"a": 1}}}, ("levenshtein", "value"), "must be a text"),
        ({"similar": {"threshold": "high"}}, ("similar", "threshold"), "must be a number"),
        ({"similar": {"method": "jaro"}}, ("similar", "method"), "ratio, partial, token-sort"),
        ({"similar": {"normalise": True}}, ("similar", "normalise"), "did you mean `normalize`?"),
        ({"embedding": {"value": "a"}}, ("embedding", "model"), "is missing"),
        ({"embedding": {"model": "e", "threshold": 1.5}}, ("embedding", "threshold"), "-1 to 1"),
        ({"embedding": 3}, ("embedding",), "non-empty string (got 3)"),
    ],
)
def test_config_problems(spec: dict[str, Any], loc: tuple[str, ...], words: str) -> None:
    found = problems(spec)
    message = next(message for where, message in found if where == loc)
    assert words in message and "; fix: " in message


def test_all_problems_of_a_similarity_at_once() -> None:
    found = problems({"similar": {"method": "jaro", "threshold": 7, "normalize": "yes"}})
    assert [loc for loc, _ in found] == [
        ("similar", "method"),
        ("similar", "threshold"),
        ("similar", "normalize"),
    ]


# --- similar -------------------------------------------------------------------------------


async def test_similar_normalises_case_and_punctuation() -> None:
    found = await verdict({"similar": "hello world"}, "Hello World!")
    assert found.value == 1.0 and found.passed is None
    raw = await verdict({"similar": {"value": "hello world", "normalize": False}}, "Hello World!")
    assert raw.value is not None and raw.value < 1.0


@pytest.mark.parametrize(
    ("method", "answer", "high"),
    [
        ("ratio", "the cat sat", True),
        ("partial", "well, the cat sat on the mat today", True),
        ("token-sort", "sat the cat", True),
        ("token-set", "the cat sat sat the", True),
        ("ratio", "completely different", False),
    ],
)
async def test_similar_methods(method: str, answer: str, high: bool) -> None:
    spec = {"similar": {"value": "the cat sat", "method": method, "threshold": 0.9}}
    assert (await verdict(spec, answer)).passed is high


async def test_similar_fails_below_its_threshold_with_a_reason() -> None:
    failed = await verdict({"similar": {"value": "Paris", "threshold": 0.8}}, "Rome")
    assert failed.passed is False and failed.value is not None
    assert failed.reason == f"{failed.value:.2f} < 0.8 to 'Paris'"
    assert (await verdict({"similar": {"threshold": 0.5}}, "", expected="x")).value == 0.0


# --- embedding -----------------------------------------------------------------------------


class FakeEmbeddings:
    """A model client whose embeddings are looked up in a table, and which counts calls."""

    def __init__(self, table: dict[str, list[float]], fail: Exception | None = None) -> None:
        self.table = table
        self.fail = fail
        self.calls: list[tuple[str, list[str]]] = []

    async def chat(self, body: dict[str, Any], **_: Any) -> ModelReply:
        raise AssertionError("embedding scorers do not chat")

    async def embed(self, model: str, texts: list[str]) -> list[list[float]]:
        self.calls.append((model, texts))
        if self.fail is not None:
            raise self.fail
        return [self.table[text] for text in texts]

    async def resolve(self, model: str) -> dict[str, Any]:
        return {}


TABLE = {
    "refunds in 30 days": [1.0, 0.0, 0.0],
    "you get your money back within a month": [0.8, 0.6, 0.0],
    "the sky is blue": [0.0, 0.0, 2.0],
    "the opposite": [-3.0, 0.0, 0.0],
    "zero": [0.0, 0.0, 0.0],
    "short": [1.0, 0.0],
    "not a number": [math.nan, 1.0, 0.0],
}


async def test_embedding_cosine_with_and_without_threshold() -> None:
    client = FakeEmbeddings(TABLE)
    plain = check({"embedding": {"model": "small", "value": "refunds in 30 days"}}, client)
    close = await plain.score(sample("you get your money back within a month"))
    assert close.value == pytest.approx(0.8) and close.passed is None
    assert client.calls[0] == (
        "small",
        ["you get your money back within a month", "refunds in 30 days"],
    )
    gated = check({"embedding": {"model": "small", "threshold": 0.5}}, client)
    far = await gated.score(sample("the sky is blue", expected="refunds in 30 days"))
    assert far.value == pytest.approx(0.0) and far.passed is False
    assert far.reason == "cosine 0.000 to 'refunds in 30 days'"
    opposite = await gated.score(sample("the opposite", expected="refunds in 30 days"))
    assert opposite.value == pytest.approx(-1.0)


async def test_embedding_embeds_each_expected_text_once() -> None:
    client = FakeEmbeddings(TABLE)
    scorer = check({"embedding": "small"}, client)
    for answer in ("the sky is blue", "the opposite", "refunds in 30 days"):
        result = await scorer.score(sample(answer, expected="refunds in 30 days"))
        assert result.error is None
    assert [texts for _, texts in client.calls] == [
        ["the sky is blue", "refunds in 30 days"],
        ["the opposite"],
        ["refunds in 30 days"],
    ]
    assert (await scorer.score(sample("refunds in 30 days", "refunds in 30 days"))).value == 1.0


async def test_embedding_of_an_empty_answer_is_zero_without_a_call() -> None:
    client = FakeEmbeddings(TABLE)
    scorer = check({"embedding": {"model": "small", "threshold": 0.1}}, client)
    empty = await scorer.score(sample("  ", expected="refunds in 30 days"))
    assert empty.value == 0.0 and empty.passed is False and empty.reason == "the answer is empty"
    assert client.calls == []


@pytest.mark.parametrize(
    ("answer", "expected", "words"),
    [
        ("zero", "refunds in 30 days", "zero"),
        ("not a number", "refunds in 30 days", "not finite"),
        ("short", "refunds in 30 days", "differ in size"),
        ("the sky is blue", "", "expected text is empty"),
        ("the sky is blue", None, "no `expected`"),
        ("unknown text", "refunds in 30 days", "KeyError"),
    ],
)
async def test_embedding_errors(answer: str, expected: Any, words: str) -> None:
    scorer = check({"embedding": "small"}, FakeEmbeddings(TABLE))
    result = await scorer.score(sample(answer, expected))
    assert result.value is None and result.error is not None and words in result.error


async def test_embedding_needs_a_client_when_it_scores_not_when_it_loads() -> None:
    result = await check({"embedding": "small"}).score(sample("a", "b"))
    assert result.error == "no model client to embed with (the eval is not run on a gateway)"


async def test_embedding_lets_a_rate_limit_through_for_the_runner_to_retry() -> None:
    limited = check({"embedding": "small"}, FakeEmbeddings(TABLE, fail=RateLimited("slow down")))
    with pytest.raises(RateLimited):
        await limited.score(sample("a", "b"))
    refused = check(
        {"embedding": "small"}, FakeEmbeddings(TABLE, fail=InvalidRequest("no such model"))
    )
    result = await refused.score(sample("a", "b"))
    assert result.error == "the gateway refused: no such model"


async def test_embedding_rejects_a_reply_of_the_wrong_length() -> None:
    class Short(FakeEmbeddings):
        async def embed(self, model: str, texts: list[str]) -> list[list[float]]:
            return [[1.0, 0.0]]

    result = await check({"embedding": "small"}, Short({})).score(sample("a", "b"))
    assert result.error == "`small` returned 1 vectors for 2 texts"
