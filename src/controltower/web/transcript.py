"""The turn of a conversation a trace holds: what the user said and what came back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

# Longer texts are cut on the session page; the trace page shows them whole.
MAX_TURN_CHARS = 20_000


def user_turn(value: Any) -> str:
    """The user's newest message in a trace input (an OpenAI-style message list or text)."""
    messages = _messages(value)
    if messages is not None:
        for message in reversed(messages):
            if isinstance(message, Mapping) and message.get("role") == "user":
                return _cut(content_text(message.get("content")))
        if messages:
            return _cut(content_text(_last(messages)))
        return ""
    return _cut(content_text(value))


def reply_turn(value: Any) -> str:
    """The answer in a trace output: an assistant message, a completion or text."""
    if isinstance(value, Mapping):
        choices = value.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
            value = choices[0].get("message") or choices[0].get("text") or choices[0]
    messages = _messages(value)
    if messages:
        value = _last(messages)
    if isinstance(value, Mapping) and ("content" in value or "tool_calls" in value):
        text = content_text(value.get("content"))
        calls = _tool_call_names(value.get("tool_calls"))
        return _cut("\n".join(part for part in (text, calls) if part))
    return _cut(content_text(value))


def content_text(content: Any) -> str:
    """Message content as text: strings as they are, text parts joined, the rest as JSON."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [_part_text(part) for part in content]
        return "\n".join(part for part in parts if part)
    if isinstance(content, Mapping) and isinstance(content.get("content"), str | list):
        return content_text(content["content"])
    return _json(content)


def _messages(value: Any) -> list[Any] | None:
    if isinstance(value, Mapping) and isinstance(value.get("messages"), list):
        return list(value["messages"])
    if isinstance(value, list) and value and all(_is_message(item) for item in value):
        return value
    return None


def _is_message(item: Any) -> bool:
    return isinstance(item, Mapping) and isinstance(item.get("role"), str)


def _last(messages: list[Any]) -> Any:
    return messages[-1]


def _part_text(part: Any) -> str:
    if isinstance(part, str):
        return part
    if isinstance(part, Mapping):
        if isinstance(part.get("text"), str):
            return str(part["text"])
        kind = part.get("type")
        if kind in ("image_url", "image", "input_image"):
            return "[image]"
        if kind == "tool_use":
            return f"[tool call: {part.get('name')}]"
    return _json(part)


def _tool_call_names(calls: Any) -> str:
    if not isinstance(calls, list) or not calls:
        return ""
    names = []
    for call in calls:
        function = call.get("function") if isinstance(call, Mapping) else None
        name = function.get("name") if isinstance(function, Mapping) else None
        names.append(str(name or "tool"))
    return "[tool calls: " + ", ".join(names) + "]"


def _json(value: Any) -> str:
    return orjson.dumps(value, default=str, option=orjson.OPT_INDENT_2).decode()


def _cut(text: str) -> str:
    if len(text) <= MAX_TURN_CHARS:
        return text
    return text[:MAX_TURN_CHARS] + f"\n… ({len(text) - MAX_TURN_CHARS:,} more characters)"
