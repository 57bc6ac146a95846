"""What the session page shows of each trace: the user's turn and the answer."""

from __future__ import annotations

from controltower.web.transcript import MAX_TURN_CHARS, content_text, reply_turn, user_turn


def test_user_turn_is_the_newest_user_message() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "image_url"}]},
    ]
    assert user_turn(messages) == "second\n[image]"
    assert user_turn({"messages": messages, "model": "m"}) == "second\n[image]"
    assert user_turn("plain question") == "plain question"
    assert user_turn(None) == ""
    assert user_turn({"query": "x"}) == '{\n  "query": "x"\n}'


def test_reply_turn_reads_messages_completions_and_tool_calls() -> None:
    assert reply_turn({"role": "assistant", "content": "hi"}) == "hi"
    assert reply_turn({"choices": [{"message": {"role": "assistant", "content": "yo"}}]}) == "yo"
    call = {"function": {"name": "get_weather", "arguments": "{}"}}
    assert reply_turn({"role": "assistant", "content": None, "tool_calls": [call]}) == (
        "[tool calls: get_weather]"
    )
    assert reply_turn("text") == "text"


def test_long_texts_are_cut() -> None:
    text = user_turn("x" * (MAX_TURN_CHARS + 10))
    assert text.startswith("x" * MAX_TURN_CHARS) and text.endswith("(10 more characters)")
    assert content_text([{"type": "tool_use", "name": "f"}]) == "[tool call: f]"
