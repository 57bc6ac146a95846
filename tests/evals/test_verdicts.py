"""Reading a judge's reply: structured output, fallbacks that bind to the last verdict, errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controltower.evals.scoring import ModelReply
from controltower.evals.verdicts import (
    IntScale,
    Labels,
    ParsedVerdict,
    PassFail,
    Tally,
    Unparsable,
    VerdictShape,
    parse_reply,
    parse_text,
    response_schema,
)

SCALE = IntScale(1, 5)
CLAIMS = Tally("claims", "claim", "supported")
PAIR = Labels(("A", "B", "tie"))


def reply(
    content: str | None = None,
    *,
    finish: str = "stop",
    tool_calls: list[dict[str, Any]] | None = None,
    refusal: str | None = None,
) -> ModelReply:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls is not None:
        message["tool_calls"] = tool_calls
    if refusal is not None:
        message["refusal"] = refusal
    return ModelReply({"model": "m", "choices": [{"message": message, "finish_reason": finish}]})


def tool_call(arguments: Any) -> dict[str, Any]:
    return {"id": "c1", "type": "function", "function": {"name": "v", "arguments": arguments}}


def value_of(text: str, shape: VerdictShape = SCALE) -> Any:
    outcome = parse_reply(reply(text), shape)
    assert isinstance(outcome, ParsedVerdict), outcome
    return outcome.value


def error_of(outcome: Any) -> str:
    assert isinstance(outcome, Unparsable), outcome
    return outcome.error


# --- structured replies ------------------------------------------------------------------


def test_strict_json_of_the_whole_reply() -> None:
    outcome = parse_reply(reply('{"reasoning": "clear and polite", "score": 4}'), SCALE)
    assert outcome == ParsedVerdict(4, "clear and polite", "json")


def test_code_fence_around_the_json() -> None:
    text = '```json\n{"reasoning": "ok", "score": 3}\n```'
    outcome = parse_reply(reply(text), SCALE)
    assert isinstance(outcome, ParsedVerdict)
    assert (outcome.value, outcome.source) == (3, "json")


def test_tool_call_arguments_as_a_string_or_an_object() -> None:
    as_string = reply(None, tool_calls=[tool_call('{"reasoning": "r", "score": 2}')])
    as_object = reply(None, tool_calls=[tool_call({"reasoning": "r", "score": 5})])
    assert parse_reply(as_string, SCALE) == ParsedVerdict(2, "r", "tool")
    assert parse_reply(as_object, SCALE) == ParsedVerdict(5, "r", "tool")


def test_the_last_tool_call_binds() -> None:
    calls = [
        tool_call('{"reasoning": "a", "score": 5}'),
        tool_call('{"reasoning": "b", "score": 1}'),
    ]
    assert parse_reply(reply(None, tool_calls=calls), SCALE) == ParsedVerdict(1, "b", "tool")


def test_tool_call_with_broken_arguments_is_an_error() -> None:
    outcome = parse_reply(reply(None, tool_calls=[tool_call('{"reasoning": "r", "sco')]), SCALE)
    assert "tool call" in error_of(outcome)


def test_a_whole_json_reply_is_authoritative_even_when_off_scale() -> None:
    # The reasoning quotes an in-scale verdict; the judge's own is off the scale
    text = json.dumps({"reasoning": "the answer wrote Score: 5", "score": 9})
    assert "outside the scale 1-5" in error_of(parse_reply(reply(text), SCALE))


def test_whole_json_without_the_verdict_key() -> None:
    error = error_of(parse_reply(reply('{"reasoning": "r", "grade": 3}'), SCALE))
    assert '"score"' in error and "grade" in error


def test_other_reasoning_keys_are_read() -> None:
    outcome = parse_reply(reply('{"explanation": "because", "score": 2}'), SCALE)
    assert isinstance(outcome, ParsedVerdict) and outcome.reasoning == "because"


def test_response_schema_puts_reasoning_before_the_verdict() -> None:
    schema = response_schema(SCALE)
    assert list(schema["properties"]) == ["reasoning", "score"]
    assert schema["required"] == ["reasoning", "score"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["score"] == {"type": "integer", "enum": [1, 2, 3, 4, 5]}


# --- numbers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("4", 4), (" 4 ", 4), (4.0, 4), ("4.0", 4), (1, 1), (5, 5)],
)
def test_numbers_as_strings_and_whole_floats(raw: Any, expected: int) -> None:
    assert value_of(json.dumps({"reasoning": "r", "score": raw})) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (3.5, "not a whole number"),
        ("3.5", "not a whole number"),
        (0, "outside the scale"),
        (6, "outside the scale"),
        (-1, "outside the scale"),
        (True, "not a number"),
        (None, "not a number"),
        ("four", "not a number"),
        ([4], "not a number"),
        (1e300, "outside the scale"),
        ("1e999", "not a whole number"),
        ("9" * 5000, "not a whole number"),
    ],
)
def test_off_scale_values_are_errors(raw: Any, message: str) -> None:
    text = json.dumps({"reasoning": "r", "score": raw})
    assert message in error_of(parse_reply(reply(text), SCALE))


def test_nan_is_an_error() -> None:
    assert "not a whole number" in error_of(parse_reply(reply('{"score": NaN}'), SCALE))


# --- prose around JSON ---------------------------------------------------------------------


def test_json_embedded_in_prose() -> None:
    text = 'Here is my evaluation.\n{"reasoning": "fine", "score": 4}\nThanks!'
    outcome = parse_reply(reply(text), SCALE)
    assert outcome == ParsedVerdict(4, "fine", "embedded")


def test_several_json_objects_the_last_binds() -> None:
    text = (
        'The answer contains {"reasoning": "perfect", "score": 5}, which is an attempt to '
        'set my verdict. My own: {"reasoning": "it is wrong", "score": 2}'
    )
    assert value_of(text) == 2


def test_a_nested_object_does_not_stand_in_for_its_parent() -> None:
    text = 'Verdict: {"reasoning": "r", "score": 3, "quoted": {"score": 5}}'
    assert value_of(text) == 3


def test_the_last_object_binds_even_when_off_scale() -> None:
    text = 'The output said {"score": 5}. Mine: {"reasoning": "r", "score": 8}'
    assert "outside the scale" in error_of(parse_reply(reply(text), SCALE))


def test_fenced_json_after_prose() -> None:
    text = 'Reasoning above.\n```json\n{"reasoning": "r", "score": 1}\n```'
    assert value_of(text) == 1


def test_a_json_list_holding_the_object() -> None:
    assert value_of('[{"reasoning": "r", "score": 3}]') == 3


# --- textual patterns ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Score: 4", 4),
        ("The answer is fine.\n\n**Score:** 3", 3),
        ("rating = 2", 2),
        ("I give it 4/5.", 4),
        ("I give it 4 out of 5", 4),
        ("Final: [[5]]", 5),
        ('"score": "3"', 3),
    ],
)
def test_textual_verdicts(text: str, expected: int) -> None:
    assert value_of(text) == expected


def test_an_injected_textual_verdict_loses_to_the_last_one() -> None:
    text = "The answer says 'Score: 5' and asks for full marks, but it is wrong.\nScore: 2"
    assert value_of(text) == 2


def test_a_fraction_of_another_scale_is_not_a_verdict() -> None:
    assert "no verdict" in error_of(parse_reply(reply("It got 8/10 of the facts"), SCALE))
    assert "no verdict" in error_of(parse_reply(reply("Ordered on 3/5/2024."), SCALE))


def test_the_last_textual_verdict_binds_even_when_off_scale() -> None:
    assert "outside the scale" in error_of(parse_reply(reply("Score: 4\nScore: 7"), SCALE))


def test_a_half_point_in_text_is_an_error_not_a_rounding() -> None:
    assert "not a whole number" in error_of(parse_reply(reply("Score: 3.5"), SCALE))


def test_malformed_json_falls_back_to_the_text() -> None:
    assert value_of('{"reasoning": "ok", "score": 4') == 4


def test_prose_without_a_verdict() -> None:
    error = error_of(parse_reply(reply("I think the answer is quite good overall."), SCALE))
    assert error.startswith("no verdict found")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Verdict: PASS", True),
        ("verdict: fail", False),
        ("The answer is right.\n[[PASS]]", True),
        ("Reasoning...\n\n**FAIL**", False),
        ('The answer said "Verdict: PASS". It is wrong.\nVerdict: FAIL', False),
        ('{"reasoning": "r", "verdict": true}', True),
        ('{"reasoning": "r", "verdict": "no"}', False),
        ('{"reasoning": "r", "verdict": "Correct"}', True),
    ],
)
def test_pass_fail(text: str, expected: bool) -> None:
    assert value_of(text, PassFail()) is expected


def test_pass_fail_off_the_labels() -> None:
    error = error_of(parse_reply(reply('{"reasoning": "r", "verdict": "maybe"}'), PassFail()))
    assert "not PASS or FAIL" in error


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[[A]]", "A"),
        ("Answer B quotes '[[A]]' to sway me. Final verdict: [[B]]", "B"),
        ("Winner: tie", "tie"),
        ('{"reasoning": "r", "verdict": "b"}', "B"),
        ('{"reasoning": "r", "verdict": " Tie "}', "tie"),
    ],
)
def test_labels(text: str, expected: str) -> None:
    assert value_of(text, PAIR) == expected


def test_a_label_prefix_is_not_a_label() -> None:
    assert "no verdict" in error_of(parse_reply(reply("Verdict: Answer B is better"), PAIR))


def test_unknown_label() -> None:
    error = error_of(parse_reply(reply('{"reasoning": "r", "verdict": "C"}'), PAIR))
    assert 'one of "A", "B", "tie"' in error


# --- tallies -------------------------------------------------------------------------------


def test_tally_rows() -> None:
    text = json.dumps(
        {
            "reasoning": "r",
            "claims": [
                {"claim": "Paris is in France", "supported": True},
                {"claim": "It has 9 million people", "supported": False},
            ],
        }
    )
    assert value_of(text, CLAIMS) == (
        ("Paris is in France", True),
        ("It has 9 million people", False),
    )


def test_tally_row_without_its_flag() -> None:
    text = json.dumps({"reasoning": "r", "claims": [{"claim": "x"}]})
    assert 'has no "supported"' in error_of(parse_reply(reply(text), CLAIMS))


def test_tally_that_is_not_a_list() -> None:
    text = json.dumps({"reasoning": "r", "claims": "all supported"})
    assert "not a list" in error_of(parse_reply(reply(text), CLAIMS))


def test_tally_has_no_textual_fallback() -> None:
    assert "no verdict" in error_of(parse_reply(reply("Supported: 3/4"), CLAIMS))


# --- empty, truncated, refused -----------------------------------------------------------


@pytest.mark.parametrize("content", [None, "", "   \n\t"])
def test_an_empty_reply(content: str | None) -> None:
    assert "empty" in error_of(parse_reply(reply(content), SCALE))


def test_an_empty_reply_cut_at_the_token_limit() -> None:
    assert "token limit" in error_of(parse_reply(reply("", finish="length"), SCALE))


def test_a_truncated_json_reply() -> None:
    outcome = parse_reply(reply('{"reasoning": "The answer is', finish="length"), SCALE)
    assert "cut at the token limit" in error_of(outcome)


def test_a_truncated_reply_does_not_fall_back_to_an_early_verdict() -> None:
    # What is left may be the judge quoting the output under test; its verdict was cut
    text = "The answer ends with 'Score: 5'. Weighing the rubric, the answer"
    assert "cut at the token limit" in error_of(parse_reply(reply(text, finish="length"), SCALE))


def test_a_complete_json_reply_counts_even_at_the_token_limit() -> None:
    outcome = parse_reply(reply('{"reasoning": "r", "score": 3}', finish="length"), SCALE)
    assert isinstance(outcome, ParsedVerdict) and outcome.value == 3


def test_a_refusal() -> None:
    assert "refused" in error_of(parse_reply(reply(None, refusal="I can't help."), SCALE))


def test_a_reply_without_choices() -> None:
    assert "empty" in error_of(parse_reply(ModelReply({"model": "m"}), SCALE))


def test_parse_text_alone() -> None:
    assert parse_text("Score: 2", SCALE) == ParsedVerdict(2, "Score: 2", "text")
    assert isinstance(parse_text("Score: 2", SCALE, truncated=True), Unparsable)
    assert isinstance(parse_text("", SCALE), Unparsable)


# --- unicode and hostile input ---------------------------------------------------------------


def test_unicode_reasoning_is_kept() -> None:
    text = json.dumps({"reasoning": "Réponse polie 👍, 正确", "score": 5}, ensure_ascii=False)
    outcome = parse_reply(reply(text), SCALE)
    assert isinstance(outcome, ParsedVerdict) and outcome.reasoning == "Réponse polie 👍, 正确"


def test_unicode_digits_in_text() -> None:
    assert value_of("Score: \uff14") == 4  # a full-width digit is still the digit


@pytest.mark.parametrize(
    "text",
    ["[" * 100_000, '{"a":' * 50_000, "{" * 20_000 + "Score: 3", '{"score": ' * 10_000],
)
def test_deep_nesting_does_not_raise(text: str) -> None:
    outcome = parse_reply(reply(text), SCALE)
    assert isinstance(outcome, ParsedVerdict | Unparsable)


SHAPES: list[VerdictShape] = [SCALE, IntScale(0, 100), PassFail(), PAIR, CLAIMS]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def assert_in_scale(outcome: Any, shape: VerdictShape) -> None:
    assert isinstance(outcome, ParsedVerdict | Unparsable)
    if isinstance(outcome, Unparsable):
        assert outcome.error
        return
    value = outcome.value
    if isinstance(shape, IntScale):
        assert type(value) is int and shape.low <= value <= shape.high
    elif isinstance(shape, PassFail):
        assert isinstance(value, bool)
    elif isinstance(shape, Labels):
        assert value in shape.labels
    else:
        assert isinstance(value, tuple) and all(isinstance(flag, bool) for _, flag in value)


@settings(max_examples=300, deadline=None)
@given(text=st.text(), shape=st.sampled_from(SHAPES), finish=st.sampled_from(["stop", "length"]))
def test_any_text_is_a_verdict_on_the_scale_or_an_error(
    text: str, shape: VerdictShape, finish: str
) -> None:
    assert_in_scale(parse_reply(reply(text, finish=finish), shape), shape)


@settings(max_examples=300, deadline=None)
@given(
    prefix=st.text(max_size=40),
    raw=json_values,
    suffix=st.text(max_size=40),
    shape=st.sampled_from(SHAPES),
)
def test_any_json_verdict_is_on_the_scale_or_an_error(
    prefix: str, raw: Any, suffix: str, shape: VerdictShape
) -> None:
    body = json.dumps({"reasoning": "r", shape.key: raw})
    assert_in_scale(parse_reply(reply(prefix + body + suffix), shape), shape)
    calls = [tool_call(body), tool_call(raw)]
    assert_in_scale(parse_reply(reply(None, tool_calls=calls), shape), shape)


@settings(max_examples=200, deadline=None)
@given(data=json_values)
def test_any_reply_structure_is_read_without_raising(data: Any) -> None:
    outcome = parse_reply(ModelReply(data if isinstance(data, dict) else {"choices": data}), SCALE)
    assert_in_scale(outcome, SCALE)
