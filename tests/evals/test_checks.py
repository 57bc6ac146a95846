"""Programmatic checks: text, JSON, tool calls, limits, the registry, and their settings."""

from __future__ import annotations

import math
from collections.abc import Coroutine
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controltower.domain.dataset import DatasetItem
from controltower.evals.checks import CHECKS, build_check, numbers_in
from controltower.evals.scoring import Sample, Scorer, ScorerConfigError, ScorerContext, Verdict


def sample(text: str = "", expected: Any = None, output: Any = None, **fields: Any) -> Sample:
    item = DatasetItem(id="i1", expected=expected, variables=fields.pop("variables", {}))
    return Sample(item=item, output=text if output is None else output, text=text, **fields)


def check(spec: dict[str, Any]) -> Scorer:
    return build_check(spec, ScorerContext())


async def verdict(spec: dict[str, Any], *args: Any, **kwargs: Any) -> Verdict:
    return await check(spec).score(sample(*args, **kwargs))


def problems(spec: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    with pytest.raises(ScorerConfigError) as caught:
        check(spec)
    return caught.value.problems


def resolved(coroutine: Coroutine[Any, Any, Verdict]) -> Verdict:
    """The result of a coroutine that never waits (the text checks), without an event loop."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coroutine.close()
    raise AssertionError("the check waited on something")


# --- the registry --------------------------------------------------------------------------


def test_every_name_of_the_eval_file_is_registered() -> None:
    assert sorted(CHECKS) == sorted(
        [
            "exact", "contains", "icontains", "regex", "starts-with", "is-json", "json-schema",
            "numeric", "levenshtein", "similar", "embedding", "tool-call", "latency", "cost",
            "python", "not",
        ]
    )  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "kind"),
    [
        ({"exact": "x"}, "binary"),
        ({"contains": "x"}, "binary"),
        ({"levenshtein": "x"}, "numeric"),
        ({"similar": "x"}, "numeric"),
        ({"embedding": "small"}, "numeric"),
        ({"not": {"contains": "x"}}, "binary"),
    ],
)
def test_a_scorer_is_named_by_its_key_and_says_its_kind(spec: dict[str, Any], kind: str) -> None:
    scorer = check(spec)
    key = next(iter(spec))
    assert scorer.name == (key if key != "not" else "not-contains")
    assert scorer.kind == kind


def test_a_name_given_in_the_settings_or_beside_the_key_names_the_scorer() -> None:
    assert check({"contains": {"value": "x", "name": "mentions-x"}}).name == "mentions-x"
    assert check({"contains": "x", "name": "beside"}).name == "beside"


def test_an_entry_must_be_one_known_scorer() -> None:
    ((loc, message),) = problems({"contanis": "x"})
    assert loc == ("contanis",) and "did you mean `contains`?" in message
    ((loc, message),) = problems({"contains": "x", "regex": "y"})
    assert loc == () and "exactly one scorer (got contains, regex)" in message
    ((loc, message),) = problems("contains: x")  # type: ignore[arg-type]
    assert loc == () and "one scorer mapping" in message


def test_unknown_key_names_the_allowed_ones_and_a_close_match() -> None:
    ((loc, message),) = problems({"contains": {"value": "x", "mod": "all"}})
    assert loc == ("contains", "mod")
    assert "did you mean `mode`?" in message
    assert "value, mode, case, name" in message


def test_every_problem_is_reported_at_once() -> None:
    found = problems(
        {
            "contains": {"value": {"a": 1}, "mode": "some", "case": "no", "colour": 1},
            "name": 3,
        }
    )
    assert [loc for loc, _ in found] == [
        ("name",),
        ("contains", "colour"),
        ("contains", "value"),
        ("contains", "mode"),
        ("contains", "case"),
    ]
    assert all("; fix: " in message for _, message in found)


@pytest.mark.parametrize(
    ("spec", "loc", "words"),
    [
        ({"contains": ""}, ("contains",), "empty text is in every answer"),
        ({"contains": []}, ("contains",), "must be a text, a number or a list"),
        ({"contains": {"mode": "some"}}, ("contains", "mode"), "one of all, any (got 'some')"),
        ({"icontains": {"value": "x", "case": True}}, ("icontains", "case"), "unknown key"),
        ({"exact": {"a": 1}}, ("exact", "a"), "put it under `value:`"),
        ({"exact": {"strip": 1}}, ("exact", "strip"), "must be true or false (got 1)"),
        ({"regex": "(unclosed"}, ("regex",), "is not a valid pattern (missing )"),
        ({"regex": {"pattern": 3}}, ("regex", "pattern"), "must be a pattern (got 3)"),
        ({"starts-with": {"value": ["a"]}}, ("starts-with", "value"), "must be a text"),
        ({"numeric": "about ten"}, ("numeric",), "holds no single number"),
        ({"numeric": {"value": 1, "abs": -1}}, ("numeric", "abs"), "at least 0 (got -1)"),
        ({"numeric": {"value": 1, "rel": "x"}}, ("numeric", "rel"), "must be a number"),
        ({"numeric": {"value": 1, "pick": "all"}}, ("numeric", "pick"), "last, first, any"),
        ({"latency": {}}, ("latency", "max_ms"), "is missing"),
        ({"latency": -5}, ("latency",), "at least 0 (got -5)"),
        ({"cost": {"max_usd": math.inf}}, ("cost", "max_usd"), "must be a number"),
        ({"is-json": True}, ("is-json",), "must be a mapping (got true)"),
        ({"json-schema": {"type": "objekt"}}, ("json-schema", "type"), "not a valid JSON Schema"),
        ({"json-schema": {"schema": None}}, ("json-schema", "schema"), "JSON Schema mapping"),
        ({"json-schema": [1]}, ("json-schema",), "must be a JSON Schema mapping"),
        ({"tool-call": {"arguments": {"a": 1}}}, ("tool-call", "arguments"), "no tool to go"),
        ({"tool-call": {"tool": "f", "arguments": "[1]"}}, ("tool-call", "arguments"), "mapping"),
        ({"tool-call": {"tool": "f", "match": "fuzzy"}}, ("tool-call", "match"), "subset, exact"),
        ({"contains": "{{ expected"}, ("contains",), "template error"),
        ({"contains": {"value": "x", "name": ""}}, ("contains", "name"), "non-empty string"),
    ],
)
def test_config_problems(spec: dict[str, Any], loc: tuple[str, ...], words: str) -> None:
    found = problems(spec)
    assert loc in [where for where, _ in found], found
    message = next(message for where, message in found if where == loc)
    assert words in message
    assert "; fix: " in message


def test_json_schema_reports_every_problem_of_the_schema() -> None:
    found = problems({"json-schema": {"type": "objekt", "required": "answer", "name": 3}})
    assert sorted(loc for loc, _ in found) == [("json-schema", "required"), ("json-schema", "type")]


# --- exact ---------------------------------------------------------------------------------


async def test_exact_compares_the_stripped_text() -> None:
    assert (await verdict({"exact": "Paris"}, " Paris\n")).passed is True
    failed = await verdict({"exact": "Paris"}, "paris")
    assert failed.passed is False and failed.value == 0.0
    assert failed.reason == "expected 'Paris', got 'paris'"


async def test_exact_options_case_and_strip() -> None:
    assert (await verdict({"exact": {"value": "Straße", "case": False}}, "STRASSE")).passed
    assert not (await verdict({"exact": {"value": "a", "strip": False}}, "a\n")).passed


async def test_exact_defaults_to_the_items_expected() -> None:
    assert (await verdict({"exact": None}, "Paris", expected="Paris")).passed
    assert (await verdict({"exact": {}}, "Rome", expected="Paris")).passed is False
    missing = await verdict({"exact": None}, "Paris")
    assert missing.error and "no `expected`" in missing.error and missing.value is None


async def test_exact_compares_a_non_string_as_json() -> None:
    assert (await verdict({"exact": None}, " 42\n", expected=42)).passed
    assert (await verdict({"exact": None}, "42.0", expected=42)).passed
    assert (await verdict({"exact": None}, '{"a": [1, 2]}', expected={"a": [1, 2]})).passed
    assert (await verdict({"exact": None}, "", output={"a": 1}, expected={"a": 1})).passed
    assert not (await verdict({"exact": None}, "1", expected=True)).passed
    assert not (await verdict({"exact": None}, '"42"', expected=42)).passed
    not_json = await verdict({"exact": {"value": [1]}}, "one")
    assert not_json.passed is False and not_json.reason == "expected [1], got 'one'"


async def test_exact_renders_a_template_per_sample() -> None:
    scorer = check({"exact": "{{ city | upper }}"})
    assert (await scorer.score(sample("PARIS", variables={"city": "Paris"}))).passed
    broken = await scorer.score(sample("PARIS"))
    assert broken.error and "template could not be rendered" in broken.error


async def test_the_reason_is_cut_for_huge_answers() -> None:
    failed = await verdict({"exact": "x"}, "y" * 100_000)
    assert failed.reason is not None and len(failed.reason) <= 200


# --- contains, icontains, starts-with ------------------------------------------------------


async def test_contains_one_text() -> None:
    passed = await verdict({"contains": "30 days"}, "Refunds within 30 days.")
    assert passed.passed and passed.details == {"matched": ["30 days"]}
    failed = await verdict({"contains": "30 days"}, "Refunds within a month.")
    assert failed.reason == "missing '30 days' in 'Refunds within a month.'"


async def test_contains_all_or_any_of_a_list() -> None:
    spec = {"value": ["refund", "30 days"], "mode": "all", "case": False}
    assert (await verdict({"contains": spec}, "REFUND in 30 days")).passed
    assert not (await verdict({"contains": spec}, "refund in a month")).passed
    anyone = {"contains": {"value": ["refund", "return"], "mode": "any"}}
    assert (await verdict(anyone, "you may return it")).passed
    none = await verdict(anyone, "no")
    assert none.reason == "none of 'refund', 'return' in 'no'"


async def test_icontains_ignores_case_with_unicode_folding() -> None:
    assert (await verdict({"icontains": "STRASSE"}, "die Straße")).passed
    assert (await verdict({"icontains": "ÉTÉ"}, "un été chaud")).passed
    assert not (await verdict({"contains": "ÉTÉ"}, "un été chaud")).passed


async def test_contains_the_items_expected_of_any_type() -> None:
    assert (await verdict({"contains": None}, "the total is 42", expected=42)).passed
    assert (await verdict({"contains": "{{ expected }}"}, "it is 42", expected=42)).passed
    assert (await verdict({"contains": {}}, "a and b", expected=["a", "b"])).passed
    unusable = await verdict({"contains": None}, "x", expected={"a": 1})
    assert unusable.error and "needs texts" in unusable.error
    empty = await verdict({"contains": None}, "x", expected=[])
    assert empty.error and "empty list" in empty.error


async def test_contains_on_an_empty_answer_fails() -> None:
    assert (await verdict({"contains": "x"}, "")).passed is False


async def test_starts_with() -> None:
    assert (await verdict({"starts-with": "Yes"}, "  Yes, we do.")).passed
    assert (await verdict({"starts-with": {"value": "YES", "case": False}}, "yes!")).passed
    assert not (await verdict({"starts-with": {"value": "Yes", "strip": False}}, " Yes")).passed
    failed = await verdict({"starts-with": "Yes"}, "No, sorry")
    assert failed.reason == "expected it to start with 'Yes', got 'No, sorry'"
    assert (await verdict({"starts-with": {"value": "ss", "case": False}}, "ßx")).passed
    assert (await verdict({"starts-with": {"value": "ß", "case": False}}, "SSx")).passed
    assert not (await verdict({"starts-with": "ß"}, "SSx")).passed


# --- regex ---------------------------------------------------------------------------------


async def test_regex_searches_the_answer() -> None:
    passed = await verdict({"regex": r"\b30 days\b"}, "within 30 days.")
    assert passed.passed and passed.details == {"matched": "30 days"}
    failed = await verdict({"regex": r"\b30 days\b"}, "within 300 days")
    assert failed.reason == r"no match for /\b30 days\b/ in 'within 300 days'"
    assert (await verdict({"regex": {"pattern": "^yes", "case": False}}, "YES")).passed


async def test_regex_from_a_template_or_the_items_expected() -> None:
    assert (await verdict({"regex": None}, "order 1234", expected=r"\d{4}")).passed
    assert (await verdict({"regex": "^{{ expected }}$"}, "abc", expected="a.c")).passed
    bad = await verdict({"regex": None}, "x", expected="(")
    assert bad.error and "not a valid pattern" in bad.error


async def test_regex_runs_on_a_bounded_part_of_a_huge_answer() -> None:
    found = await verdict({"regex": "needle"}, "x" * 200_000 + "needle")
    assert found.passed is False and found.details["truncated"] is True


# --- numeric -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("The answer is 42.", [42.0]),
        ("$1,234.50 and -3", [1234.5, -3.0]),
        ("2e-3 or .5", [0.002, 0.5]),
        ("on 2024-01-05", [2024.0, 1.0, 5.0]),
        ("\u22127 degrees", [-7.0]),
        ("10,20,30", [10.0, 20.0, 30.0]),
        ("1,2345", [1.0, 2345.0]),
        ("abc123 v2", []),
        ("٤٢", [42.0]),
        ("1e999", []),
    ],
)
def test_numbers_in_a_text(text: str, numbers: list[float]) -> None:
    assert numbers_in(text) == numbers


async def test_numeric_takes_the_last_number_by_default() -> None:
    assert (await verdict({"numeric": 42}, "6 times 7 is 42")).passed
    failed = await verdict({"numeric": 42}, "42, or rather 41")
    assert failed.reason == "expected 42, got 41"
    assert (await verdict({"numeric": {"value": 42, "pick": "first"}}, "42 or 41")).passed
    assert (await verdict({"numeric": {"value": 41, "pick": "any"}}, "42 or 41 or 40")).passed


async def test_numeric_tolerances() -> None:
    assert (await verdict({"numeric": {"value": 100, "abs": 0.5}}, "100.4")).passed
    assert not (await verdict({"numeric": {"value": 100, "abs": 0.5}}, "100.6")).passed
    assert (await verdict({"numeric": {"value": 100, "rel": 0.01}}, "about 101")).passed
    failed = await verdict({"numeric": {"value": 100, "rel": 0.01}}, "102")
    assert failed.reason == "expected 100 (±1), got 102"
    assert (await verdict({"numeric": 0.3}, f"{0.1 + 0.2}")).passed


async def test_numeric_expected_and_answer_shapes() -> None:
    assert (await verdict({"numeric": None}, "it is 1,000", expected="1000")).passed
    assert (await verdict({"numeric": "{{ expected }}"}, "7", expected=7)).passed
    assert (await verdict({"numeric": None}, "", output=3.5, expected=3.5)).passed
    empty = await verdict({"numeric": 1}, "")
    assert empty.passed is False and empty.reason == "expected 1, no number in ''"
    bad = await verdict({"numeric": None}, "1", expected="one or two")
    assert bad.error and "one expected number" in bad.error


# --- is-json, json-schema ------------------------------------------------------------------


async def test_is_json() -> None:
    assert (await verdict({"is-json": None}, '{"a": 1}')).passed
    assert (await verdict({"is-json": {}}, "[1, 2]")).passed
    assert (await verdict({"is-json": None}, "", output={"a": 1})).passed
    failed = await verdict({"is-json": None}, "{'a': 1}")
    assert failed.passed is False and failed.reason and failed.reason.startswith("not JSON (")
    assert (await verdict({"is-json": None}, "")).passed is False
    assert (await verdict({"is-json": None}, "NaN")).passed is False


SCHEMA = {
    "type": "object",
    "required": ["answer"],
    "properties": {"answer": {"type": "string"}, "n": {"type": "integer", "minimum": 0}},
}


async def test_json_schema_validates_the_answer() -> None:
    assert (await verdict({"json-schema": SCHEMA}, '{"answer": "yes"}')).passed
    missing = await verdict({"json-schema": SCHEMA}, '{"n": 1}')
    assert missing.reason == "the answer: 'answer' is a required property"
    nested = await verdict({"json-schema": SCHEMA}, '{"answer": "x", "n": -1}')
    assert nested.reason == "n: -1 is less than the minimum of 0"
    not_json = await verdict({"json-schema": SCHEMA}, "yes")
    assert not_json.passed is False and not_json.reason and "not JSON" in not_json.reason


async def test_json_schema_wrapped_with_a_name_or_from_the_item() -> None:
    wrapped = check({"json-schema": {"schema": SCHEMA, "name": "shape"}})
    assert wrapped.name == "shape"
    assert (await wrapped.score(sample('{"answer": "a"}'))).passed
    per_item = check({"json-schema": None})
    assert (await per_item.score(sample("[1]", expected={"type": "array"}))).passed
    assert (await per_item.score(sample("[1]", expected={"type": "object"}))).passed is False
    bad = await per_item.score(sample("[1]", expected={"type": 5}))
    assert bad.error and "schema" in bad.error


async def test_json_schema_fetches_no_remote_reference() -> None:
    scorer = check({"json-schema": {"$ref": "http://127.0.0.1:9/schema.json"}})
    result = await scorer.score(sample("{}"))
    assert result.error and "Unresolvable" in result.error


# --- tool-call -----------------------------------------------------------------------------

WEATHER = {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "c"}'}
OPENAI_WEATHER = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}


async def test_tool_call_by_name_and_argument_subset() -> None:
    assert (await verdict({"tool-call": "get_weather"}, tool_calls=(WEATHER,))).passed
    spec = {"tool-call": {"tool": "get_weather", "arguments": {"city": "Paris"}}}
    assert (await verdict(spec, tool_calls=(WEATHER,))).passed
    assert (await verdict(spec, tool_calls=(OPENAI_WEATHER,))).passed
    rome = {"name": "get_weather", "arguments": {"city": "Rome"}}
    failed = await verdict(spec, tool_calls=(rome,))
    assert (
        failed.reason == 'expected get_weather({"city":"Paris"}), got get_weather({"city":"Rome"})'
    )


async def test_tool_call_exact_arguments() -> None:
    spec = {"tool": "get_weather", "arguments": '{"city": "Paris"}', "match": "exact"}
    assert not (await verdict({"tool-call": spec}, tool_calls=(WEATHER,))).passed
    assert (await verdict({"tool-call": spec}, tool_calls=(OPENAI_WEATHER,))).passed


async def test_tool_call_fails_without_calls_or_with_bad_arguments() -> None:
    none = await verdict({"tool-call": "get_weather"})
    assert none.passed is False and none.reason == "expected get_weather(...), got no tool call"
    broken = {"name": "get_weather", "arguments": "{not json"}
    spec = {"tool-call": {"tool": "get_weather", "arguments": {"city": "Paris"}}}
    assert (await verdict(spec, tool_calls=(broken,))).passed is False
    assert (await verdict({"tool-call": "get_weather"}, tool_calls=(broken,))).passed


async def test_tool_call_from_the_items_expected() -> None:
    calls = (WEATHER, {"name": "search", "arguments": {"q": "hotels", "n": 5}})
    expected = [{"name": "search", "arguments": {"q": "hotels"}}, "get_weather"]
    assert (await verdict({"tool-call": None}, tool_calls=calls, expected=expected)).passed
    nested = {"function": {"name": "search", "arguments": '{"n": 5}'}}
    assert (await verdict({"tool-call": {}}, tool_calls=calls, expected=nested)).passed
    twice = ["get_weather", "get_weather"]
    assert not (await verdict({"tool-call": None}, tool_calls=calls, expected=twice)).passed
    text = await verdict({"tool-call": None}, tool_calls=calls, expected={"answer": "x"})
    assert text.error and "expects a tool call" in text.error


async def test_tool_call_subset_reaches_into_nested_arguments() -> None:
    call = {"name": "book", "arguments": {"guest": {"name": "Ann", "age": 30}, "nights": 2}}
    spec = {"tool-call": {"tool": "book", "arguments": {"guest": {"name": "Ann"}}}}
    assert (await verdict(spec, tool_calls=(call,))).passed
    assert not (
        await verdict({"tool-call": {**spec["tool-call"], "match": "exact"}}, tool_calls=(call,))
    ).passed


# --- latency, cost -------------------------------------------------------------------------


async def test_latency_and_cost_limits() -> None:
    assert (await verdict({"latency": 500}, latency_ms=499.5)).passed
    slow = await verdict({"latency": {"max_ms": 500}}, latency_ms=750.0)
    assert slow.passed is False and slow.reason == "750 ms, over the limit of 500 ms"
    assert (await verdict({"cost": {"max_usd": 0.01}}, cost_usd=0.002)).passed
    dear = await verdict({"cost": 0.01}, cost_usd=0.05)
    assert dear.passed is False and dear.reason == "0.05 USD, over the limit of 0.01 USD"
    unknown = await verdict({"cost": 0.01})
    assert unknown.error == "the sample has no cost recorded"


# --- nothing raises ------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
TEXT_CHECKS = [
    {"exact": None},
    {"exact": {"value": "Paris", "case": False}},
    {"contains": None},
    {"contains": {"value": ["a", "{{ expected }}"], "mode": "any"}},
    {"icontains": "ß"},
    {"regex": None},
    {"regex": r"(\w+)\s+\1"},
    {"starts-with": None},
    {"numeric": None},
    {"numeric": {"value": 3, "abs": 1, "pick": "any"}},
    {"is-json": None},
    {"json-schema": SCHEMA},
    {"json-schema": None},
    {"tool-call": None},
    {"tool-call": {"tool": "f", "arguments": {"a": 1}}},
    {"latency": 10},
    {"cost": 1},
    {"levenshtein": {"max": 3}},
    {"similar": {"value": "{{ expected }}", "threshold": 0.5, "method": "token-set"}},
    {"not": {"contains": "x"}},
]
BUILT = [check(spec) for spec in TEXT_CHECKS]


@settings(max_examples=150, deadline=None)
@given(
    text=st.text(max_size=300),
    expected=JSON,
    output=st.one_of(st.none(), JSON),
    calls=st.lists(
        st.one_of(JSON, st.fixed_dictionaries({"name": st.text(max_size=3), "arguments": JSON})),
        max_size=3,
    ),
    latency=st.one_of(st.none(), st.floats(allow_nan=False)),
)
def test_text_checks_never_raise_on_any_input(
    text: str, expected: Any, output: Any, calls: list[Any], latency: float | None
) -> None:
    item = DatasetItem(id="x", expected=expected)
    answer = Sample(
        item=item,
        output=text if output is None else output,
        text=text,
        tool_calls=tuple(calls),
        latency_ms=latency,
        cost_usd=latency,
    )
    for scorer in BUILT:
        result = resolved(scorer.score(answer))
        assert isinstance(result, Verdict)
        if result.error is None:
            assert result.value is not None and math.isfinite(result.value)
        else:
            assert result.value is None and result.passed is None and len(result.error) <= 200
        if scorer.kind == "binary" and result.error is None:
            assert result.passed is (result.value == 1.0)
