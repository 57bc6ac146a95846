"""Chat messages from the three conventions, in the OpenAI shape the gateway stores.

GenAI semantic conventions send `{"role", "parts": [...]}`, OpenInference flattens
`llm.input_messages.N.message.*` into attributes, OpenLLMetry flattens
`gen_ai.prompt.N.{role,content,tool_calls...}`; all become `{"role", "content",
"tool_calls"?}` so the trace view shows one kind of conversation.
"""

from __future__ import annotations

from typing import Any

import orjson

Message = dict[str, Any]


def parse_json(value: Any) -> Any:
    """A JSON document given as a string, decoded; anything else (or bad JSON) as it is."""
    if isinstance(value, str | bytes) and value[:1] in ("{", "[", b"{", b"["):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def unflatten(flat: dict[str, Any]) -> Any:
    """Dotted keys (`0.message.role`) as nested values; all-digit levels become lists."""
    root: dict[str, Any] = {}
    for path, value in flat.items():
        node = root
        *parents, leaf = path.split(".")
        for key in parents:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                break  # a value and a deeper key at one path: keep the value
            node = child
        else:
            node[leaf] = value
    return _listify(root)


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    if node and all(key.isdigit() for key in node):
        return [_listify(node[key]) for key in sorted(node, key=int)]
    return {key: _listify(value) for key, value in node.items()}


def one_or_all(messages: Any) -> Any:
    """A single output message on its own (as the gateway stores it), else the list."""
    if isinstance(messages, list) and len(messages) == 1:
        return messages[0]
    return messages


def semconv_messages(value: Any) -> Any:
    """`gen_ai.input.messages` / `gen_ai.output.messages` (JSON text or structured)."""
    value = parse_json(value)
    if not isinstance(value, list):
        return value
    return [_from_parts(m) if isinstance(m, dict) and "parts" in m else m for m in value]


def system_message(value: Any) -> Message:
    """`gen_ai.system_instructions` (a list of parts, or text) as a system message."""
    value = parse_json(value)
    if isinstance(value, list):
        return _from_parts({"role": "system", "parts": value})
    return {"role": "system", "content": value}


def _from_parts(message: Message) -> Message:
    parts = message.get("parts")
    if (
        isinstance(parts, list)
        and len(parts) == 1
        and isinstance(parts[0], dict)
        and parts[0].get("type") == "text"
        and len(message) <= 2 + ("finish_reason" in message)
    ):
        # nearly every message: one text part (and an output's finish reason)
        out = {"role": message.get("role"), "content": parts[0].get("content", "")}
        if "finish_reason" in message:
            out["finish_reason"] = message["finish_reason"]
        return out
    return _from_mixed_parts(message)


def _from_mixed_parts(message: Message) -> Message:
    out: Message = {"role": message.get("role")}
    texts: list[Any] = []
    tool_calls: list[Message] = []
    other: list[Any] = []
    for part in message.get("parts") or ():
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            texts.append(part.get("content", ""))
        elif kind == "tool_call":
            tool_calls.append(_tool_call(part.get("id"), part.get("name"), part.get("arguments")))
        elif kind == "tool_call_response":
            out["tool_call_id"] = part.get("id")
            texts.append(part.get("response"))
        else:
            other.append(part)
    if other:
        out["content"] = [{"type": "text", "text": text} for text in texts] + other
    elif len(texts) == 1 or not all(isinstance(text, str) for text in texts):
        out["content"] = texts[0] if len(texts) == 1 else texts
    else:
        out["content"] = "".join(texts) if texts else None
    if tool_calls:
        out["tool_calls"] = tool_calls
    for key in ("name", "finish_reason"):
        if key in message:
            out[key] = message[key]
    return out


def _tool_call(call_id: Any, name: Any, arguments: Any) -> Message:
    if arguments is not None and not isinstance(arguments, str):
        # OpenAI's wire form carries arguments as JSON text
        arguments = orjson.dumps(arguments, default=str).decode()
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def openinference_messages(items: Any) -> Any:
    """`llm.input_messages` / `llm.output_messages` after unflattening."""
    if not isinstance(items, list):
        return items
    return [_openinference_message(item) for item in items]


def _openinference_message(item: Any) -> Any:
    if not isinstance(item, dict):
        return item
    message = item.get("message", item)
    if not isinstance(message, dict):
        return message
    out: Message = {"role": message.get("role")}
    if "content" in message:
        out["content"] = message["content"]
    elif isinstance(message.get("contents"), list):
        out["content"] = [_openinference_part(part) for part in message["contents"]]
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        out["tool_calls"] = [_openinference_call(call) for call in calls]
    for key in ("tool_call_id", "name"):
        if key in message:
            out[key] = message[key]
    return out


def _openinference_part(part: Any) -> Any:
    content = part.get("message_content", part) if isinstance(part, dict) else part
    if not isinstance(content, dict):
        return content
    image = content.get("image")
    if content.get("type") == "image" and isinstance(image, dict):
        # flattened as `message_content.image.image.url`: an image object inside the part
        inner = image.get("image", image)
        url = inner.get("url") if isinstance(inner, dict) else None
        return {"type": "image_url", "image_url": {"url": url}}
    return content


def _openinference_call(call: Any) -> Any:
    inner = call.get("tool_call", call) if isinstance(call, dict) else None
    if not isinstance(inner, dict):
        return call
    function = inner.get("function")
    if not isinstance(function, dict):
        function = {}
    return _tool_call(inner.get("id"), function.get("name"), function.get("arguments"))


def indexed_messages(items: Any) -> Any:
    """OpenLLMetry's `gen_ai.prompt.N.*` / `gen_ai.completion.N.*` after unflattening."""
    if not isinstance(items, list):
        return items
    return [_indexed_message(item) for item in items]


def _indexed_message(item: Any) -> Any:
    if not isinstance(item, dict):
        return item
    out = dict(item)
    calls = item.get("tool_calls")
    if isinstance(calls, list):
        out["tool_calls"] = [
            _tool_call(call.get("id"), call.get("name"), call.get("arguments"))
            if isinstance(call, dict)
            else call
            for call in calls
        ]
    return out


def documents(items: Any) -> Any:
    """OpenInference `retrieval.documents.N.document.*` as a list of document objects."""
    if not isinstance(items, list):
        return items
    out = []
    for item in items:
        doc = item.get("document", item) if isinstance(item, dict) else item
        if isinstance(doc, dict) and "metadata" in doc:
            doc = {**doc, "metadata": parse_json(doc["metadata"])}
        out.append(doc)
    return out


def event_message(name: str, attributes: dict[str, Any]) -> Message:
    """A `gen_ai.{system,user,assistant,tool}.message` span event as a message."""
    role = attributes.get("role") or name.split(".")[1]
    message: Message = {"role": role, "content": parse_json(attributes.get("content"))}
    calls = parse_json(attributes.get("tool_calls"))
    if calls:
        message["tool_calls"] = calls
    if role == "tool" and attributes.get("id") is not None:
        message["tool_call_id"] = attributes["id"]
    return message


def choice_message(attributes: dict[str, Any]) -> Message:
    """A `gen_ai.choice` span event as the assistant's message."""
    message = parse_json(attributes.get("message"))
    if not isinstance(message, dict):
        message = {"role": "assistant", "content": attributes.get("content", message)}
    else:
        message = {"role": "assistant", **message}
    if attributes.get("finish_reason") is not None:
        message["finish_reason"] = attributes["finish_reason"]
    return message
