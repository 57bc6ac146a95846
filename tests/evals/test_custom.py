"""Custom Python scorers, and the negation of any scorer."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from controltower.domain.dataset import DatasetItem
from controltower.errors import RateLimited
from controltower.evals.checks import build_check
from controltower.evals.custom import load_function, make_not, negate, result_verdict
from controltower.evals.scoring import (
    Sample,
    ScoreKind,
    Scorer,
    ScorerConfigError,
    ScorerContext,
    Verdict,
)

HERE = "tests.evals.test_custom"


def sample(text: str = "answer", expected: Any = None) -> Sample:
    return Sample(item=DatasetItem(id="i1", expected=expected), output=text, text=text)


def check(spec: dict[str, Any]) -> Scorer:
    return build_check(spec, ScorerContext())


def problems(spec: Any) -> list[tuple[tuple[str | int, ...], str]]:
    with pytest.raises(ScorerConfigError) as caught:
        check(spec)
    return caught.value.problems


# --- functions the tests name by their import path -----------------------------------------


def says_yes(sample: Sample) -> bool:
    return sample.text.startswith("yes")


async def says_yes_later(sample: Sample) -> bool:
    return sample.text.startswith("yes")


def length(sample: Sample) -> int:
    return len(sample.text)


def numpy_results(sample: Sample) -> Any:
    return np.bool_(True) if sample.text == "bool" else np.float64(0.25)


def verdict_of(sample: Sample) -> Verdict:
    return Verdict(0.5, True, "half", details={"why": "made by hand"})


def as_dict(sample: Sample) -> Any:
    return {
        "value": {"value": 0.7, "reason": "fine"},
        "pass": {"pass": False, "reason": "wrong tone"},
        "both": {"value": 0.2, "pass": True},
        "unknown": {"score": 1},
        "neither": {"reason": "?"},
        "bad pass": {"pass": "yes"},
        "bad value": {"value": "high"},
        "bad reason": {"pass": True, "reason": 3},
        "bool value": {"value": True},
    }[sample.text]


def broken(sample: Sample) -> bool:
    raise ValueError("the function has a bug")


async def broken_later(sample: Sample) -> bool:
    raise KeyError("missing")


def returns(sample: Sample) -> Any:
    return {"none": None, "text": "yes", "nan": math.nan, "list": [1]}[sample.text]


def rate_limited(sample: Sample) -> bool:
    raise RateLimited("slow down")


class Scores:
    @staticmethod
    def nested(sample: Sample) -> bool:
        return True


def takes_two(sample: Sample, other: Any) -> bool:
    return True


NOT_CALLABLE = 42


# --- python --------------------------------------------------------------------------------


async def test_a_sync_or_async_function_returning_a_bool() -> None:
    for function in ("says_yes", "says_yes_later"):
        scorer = check({"python": f"{HERE}:{function}"})
        assert scorer.name == "python" and scorer.kind == "binary"
        assert await scorer.score(sample("yes, sure")) == Verdict(1.0, True)
        assert await scorer.score(sample("no")) == Verdict(0.0, False)


async def test_a_number_passes_by_the_threshold_when_given() -> None:
    plain = check({"python": {"function": f"{HERE}:length", "kind": "numeric"}})
    assert plain.kind == "numeric"
    assert await plain.score(sample("abc")) == Verdict(3.0, None)
    gated = check({"python": {"function": f"{HERE}:length", "threshold": 3, "name": "long"}})
    assert gated.name == "long"
    assert (await gated.score(sample("abc"))).passed is True
    assert (await gated.score(sample("ab"))).passed is False


async def test_numpy_results_and_nested_attributes() -> None:
    scorer = check({"python": f"{HERE}:numpy_results"})
    assert await scorer.score(sample("bool")) == Verdict(1.0, True)
    assert await scorer.score(sample("float")) == Verdict(0.25, None)
    assert (await check({"python": f"{HERE}:Scores.nested"}).score(sample())).passed


async def test_a_verdict_is_returned_as_is() -> None:
    result = await check({"python": f"{HERE}:verdict_of"}).score(sample())
    assert result == Verdict(0.5, True, "half", details={"why": "made by hand"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("value", Verdict(0.7, None, "fine")),
        ("pass", Verdict(0.0, False, "wrong tone")),
        ("both", Verdict(0.2, True)),
    ],
)
async def test_a_dict_of_value_pass_and_reason(text: str, expected: Verdict) -> None:
    assert await check({"python": f"{HERE}:as_dict"}).score(sample(text)) == expected


async def test_a_dict_value_passes_by_the_threshold() -> None:
    scorer = check({"python": {"function": f"{HERE}:as_dict", "threshold": 0.5}})
    assert await scorer.score(sample("value")) == Verdict(0.7, True, "fine")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("unknown", "unknown keys ['score']"),
        ("neither", "neither `value` nor `pass`"),
        ("bad pass", "`pass` is 'yes'"),
        ("bad value", "`value` is 'high'"),
        ("bool value", "`value` is true"),
        ("bad reason", "`reason` is 3"),
    ],
)
async def test_a_malformed_dict_is_an_error(text: str, words: str) -> None:
    result = await check({"python": f"{HERE}:as_dict"}).score(sample(text))
    assert result.value is None and result.passed is None
    assert result.error is not None and words in result.error


@pytest.mark.parametrize(
    ("function", "error"),
    [
        ("broken", "ValueError: the function has a bug"),
        ("broken_later", "KeyError: 'missing'"),
    ],
)
async def test_an_exception_is_an_error_never_a_fail(function: str, error: str) -> None:
    result = await check({"python": f"{HERE}:{function}"}).score(sample())
    assert result == Verdict.failed(error)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("none", "returned null"),
        ("text", "returned 'yes'"),
        ("list", "returned [1]"),
        ("nan", "returned nan"),
    ],
)
async def test_an_unusable_result_is_an_error(text: str, words: str) -> None:
    result = await check({"python": f"{HERE}:returns"}).score(sample(text))
    assert result.error is not None and words in result.error and "fix: return" in result.error


async def test_a_retryable_gateway_error_propagates_to_the_runner() -> None:
    with pytest.raises(RateLimited):
        await check({"python": f"{HERE}:rate_limited"}).score(sample())


def test_result_verdict_without_a_scorer() -> None:
    assert result_verdict(True) == Verdict(1.0, True)
    assert result_verdict(2, threshold=1) == Verdict(2.0, True)
    assert result_verdict({"pass": True}) == Verdict(1.0, True)


@pytest.mark.parametrize(
    ("reference", "words"),
    [
        ("no_colon", "is not `package.module:function`"),
        ("a.b:", "is not `package.module:function`"),
        ("a b:c", "is not `package.module:function`"),
        ("no_such_module_here:f", "cannot import `no_such_module_here` (No module named"),
        (f"{HERE}:missing", f"`{HERE}` has no `missing`"),
        (f"{HERE}:NOT_CALLABLE", "is not a function"),
        (f"{HERE}:takes_two", "cannot be called with one argument"),
    ],
)
def test_a_bad_function_reference(reference: str, words: str) -> None:
    ((loc, message),) = problems({"python": reference})
    assert loc == ("python",) and words in message and "fix: " in message


def test_a_module_that_fails_to_import_says_how(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ct_eval_raises.py").write_text("raise RuntimeError('no config file')\n")
    (tmp_path / "ct_eval_syntax.py").write_text("def f(:\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    _, raised = load_function("ct_eval_raises:f")
    assert raised == "importing `ct_eval_raises` raised RuntimeError: no config file"
    _, syntax = load_function("ct_eval_syntax:f")
    assert syntax is not None and syntax.startswith("importing `ct_eval_syntax` raised SyntaxError")


def test_a_module_beside_the_eval_file_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ct_eval_scorers.py").write_text(
        "def short(sample):\n    return len(sample.text) < 5\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "ct_eval_scorers", raising=False)
    function, problem = load_function("ct_eval_scorers:short")
    assert problem is None and function is not None and function(sample("hi"))


def test_every_python_problem_at_once() -> None:
    found = problems({"python": {"function": "nope", "kind": "score", "threshold": "x", "arg": 1}})
    assert [loc for loc, _ in found] == [
        ("python", "arg"),
        ("python", "function"),
        ("python", "kind"),
        ("python", "threshold"),
    ]
    ((loc, message),) = problems({"python": {}})
    assert loc == ("python", "function") and "is missing" in message


# --- not -----------------------------------------------------------------------------------


class Fixed:
    """A scorer that answers one verdict (a judge, for the negation's purposes)."""

    def __init__(self, result: Verdict, kind: ScoreKind = "binary", name: str = "fixed") -> None:
        self.name, self.kind, self.result = name, kind, result

    async def score(self, sample: Sample) -> Verdict:
        return self.result


async def test_negating_a_pass_fails_and_a_fail_passes() -> None:
    scorer = check({"not": {"contains": "as an AI"}})
    assert scorer.name == "not-contains" and scorer.kind == "binary"
    failed = await scorer.score(sample("as an AI, I cannot"))
    assert failed.passed is False and failed.value == 0.0
    assert failed.reason == 'expected `contains` to fail, but it passed: matched ["as an AI"]'
    passed = await scorer.score(sample("Sure, here it is"))
    assert passed == Verdict(1.0, True, details={"negated_value": 0.0})


async def test_negating_an_error_stays_an_error() -> None:
    scorer = check({"not": {"contains": None}})
    result = await scorer.score(sample("x"))
    assert result.value is None and result.passed is None
    assert result.error is not None and "no `expected`" in result.error
    error = Verdict.failed("judge reply unreadable")
    assert await negate(Fixed(error)).score(sample()) == error


async def test_negating_a_score_needs_a_threshold() -> None:
    plain = await check({"not": {"similar": "x"}}).score(sample("x"))
    assert plain.error is not None and "give it a threshold" in plain.error
    gated = check({"not": {"similar": {"value": "paris", "threshold": 0.8}}})
    assert gated.kind == "binary"
    different = await gated.score(sample("rome"))
    assert different.passed is True and different.value == 1.0
    assert different.details["negated_value"] < 0.8


async def test_negate_keeps_a_judges_identity_and_takes_a_name() -> None:
    judged = Verdict(1.0, True, "polite", judge_model="judge", judge_prompt_hash="abc")
    scorer = negate(Fixed(judged, name="polite"), "rude")
    assert scorer.name == "rude"
    result = await scorer.score(sample())
    assert (result.passed, result.judge_model, result.judge_prompt_hash) == (False, "judge", "abc")
    assert result.reason == "expected `polite` to fail, but it passed: polite"
    assert negate(Fixed(judged)).name == "not-fixed"


async def test_make_not_builds_the_inner_scorer_with_the_loaders_builder() -> None:
    seen: list[Any] = []

    def build(spec: Any, ctx: ScorerContext) -> Scorer:
        seen.append(spec)
        return Fixed(Verdict.of_bool(False), name="tone")

    scorer = make_not({"tone": {"rubric": "polite"}, "name": "not-rude"}, ScorerContext(), build)
    assert seen == [{"tone": {"rubric": "polite"}}]
    assert scorer.name == "not-rude"
    assert (await scorer.score(sample())).passed is True


def test_make_not_reports_its_problems_with_the_inner_ones() -> None:
    found = problems({"not": {"regex": "(", "name": 5}})
    assert [loc for loc, _ in found] == [("not", "name"), ("not", "regex")]
    ((loc, message),) = problems({"not": "as an AI"})
    assert loc == ("not",) and "needs one scorer" in message
    ((loc, message),) = problems({"not": {"name": "x"}})
    assert loc == ("not",) and "needs one scorer" in message
    ((loc, message),) = problems({"not": {"contains": "a", "regex": "b"}})
    assert loc == ("not",) and "exactly one scorer" in message
    ((loc, message),) = problems({"not": {"containz": "a"}})
    assert loc == ("not", "containz") and "did you mean `contains`?" in message


async def test_a_double_negation_is_the_check() -> None:
    scorer = check({"not": {"not": {"contains": "x"}}})
    assert scorer.name == "not-not-contains"
    assert (await scorer.score(sample("x"))).passed is True
    assert (await scorer.score(sample("y"))).passed is False


async def test_a_scorer_that_breaks_the_protocol_is_still_an_error() -> None:
    class Raising(Fixed):
        async def score(self, sample: Sample) -> Verdict:
            raise RuntimeError("bug in a plugin")

    result = await negate(Raising(Verdict(1.0, True))).score(sample())
    assert result == Verdict.failed("RuntimeError: bug in a plugin")
