"""Translation between OpenAI chat completion bodies and Anthropic's Messages API, both ways."""

from __future__ import annotations

import time
from typing import Any

import orjson

from controltower.errors import InvalidRequest, UpstreamError

DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; OpenAI clients often leave it out

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

TOOL_CHOICES = {"auto": "auto", "none": "none", "required": "any"}

_ANY_OBJECT = {"type": "object", "properties": {}}

Body = dict[str, Any]


def to_anthropic(body: Body, model: str) -> Body:
    """The Anthropic Messages body for an OpenAI chat completion body."""
    n = body.get("n")
    if isinstance(n, int) and n > 1:
        raise InvalidRequest(
            "Anthropic models return one choice per request; set n to 1", param="n"
        )
    system, messages = _messages(body.get("messages") or [])
    out: Body = {"model": model, "messages": messages, "max_tokens": _max_tokens(body)}
    system = _with_format_instruction(system, body.get("response_format"))
    if system:
        out["system"] = system
    _copy_sampling(body, out)
    _copy_tools(body, out)
    if body.get("user"):
        out["metadata"] = {"user_id": str(body["user"])}
    if body.get("stream"):
        out["stream"] = True
    return out


def from_anthropic(data: Body, model: str) -> Body:
    """The OpenAI chat completion for a whole Anthropic Messages answer."""
    content = data.get("content")
    if data.get("type") != "message" or not isinstance(content, list):
        raise UpstreamError("Anthropic answered without message content: not a Messages answer")
    texts = [block.get("text") or "" for block in content if block.get("type") == "text"]
    calls = [_tool_call(block) for block in content if block.get("type") == "tool_use"]
    # OpenAI sends null content beside tool calls, and a string otherwise
    text = "".join(texts) if texts or not calls else None
    message: Body = {"role": "assistant", "content": text, "refusal": None}
    if calls:
        message["tool_calls"] = calls
    choice = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": finish_reason(data.get("stop_reason")),
    }
    return {
        "id": data.get("id"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": data.get("model") or model,
        "choices": [choice],
        "usage": openai_usage(data.get("usage") or {}),
    }


def finish_reason(stop_reason: str | None) -> str:
    """The OpenAI finish_reason for an Anthropic stop_reason."""
    return FINISH_REASONS.get(stop_reason or "", "stop")


def openai_usage(usage: Body) -> Body:
    """An OpenAI usage object; Anthropic counts cache reads and writes apart from input_tokens."""
    cached = usage.get("cache_read_input_tokens") or 0
    written = usage.get("cache_creation_input_tokens") or 0
    prompt = (usage.get("input_tokens") or 0) + cached + written
    completion = usage.get("output_tokens") or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


class StreamTranslator:
    """Turns Anthropic stream events into OpenAI `chat.completion.chunk` dicts, in order."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.id = ""
        self.created = int(time.time())
        self.finished = False
        self._usage: Body = {}
        self._stop_reason: str | None = None
        self._tool_index: dict[int, int] = {}  # Anthropic content block index -> tool call index

    def translate(self, event: Body) -> list[Body]:
        """The chunks one event becomes: often none (pings, block stops, message_delta)."""
        kind = event.get("type")
        if kind == "message_start":
            return self._start(event.get("message") or {})
        if kind == "content_block_start":
            return self._block_start(event.get("index", 0), event.get("content_block") or {})
        if kind == "content_block_delta":
            return self._block_delta(event.get("index", 0), event.get("delta") or {})
        if kind == "message_delta":
            self._stop_reason = (event.get("delta") or {}).get("stop_reason") or self._stop_reason
            self._merge_usage(event.get("usage") or {})
        elif kind == "message_stop":
            self.finished = True
            return [self._chunk({}, finish_reason(self._stop_reason))]
        # the rest (ping, content_block_stop, types added later) carries nothing for the client
        return []

    def usage_chunk(self) -> Body:
        """The trailing OpenAI usage chunk, with the counts gathered so far."""
        chunk = self._chunk({})
        chunk["choices"] = []
        chunk["usage"] = openai_usage(self._usage)
        return chunk

    def _start(self, message: Body) -> list[Body]:
        self.id = message.get("id") or self.id
        self.model = message.get("model") or self.model
        self._merge_usage(message.get("usage") or {})
        return [self._chunk({"role": "assistant", "content": ""})]

    def _block_start(self, index: int, block: Body) -> list[Body]:
        if block.get("type") == "text" and block.get("text"):
            return [self._chunk({"content": block["text"]})]
        if block.get("type") != "tool_use":
            return []
        call_index = self._tool_index[index] = len(self._tool_index)
        arguments = orjson.dumps(block["input"]).decode() if block.get("input") else ""
        function = {"name": block.get("name"), "arguments": arguments}
        call = {
            "index": call_index,
            "id": block.get("id"),
            "type": "function",
            "function": function,
        }
        return [self._chunk({"tool_calls": [call]})]

    def _block_delta(self, index: int, delta: Body) -> list[Body]:
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return [self._chunk({"content": delta["text"]})]
        if kind == "input_json_delta" and delta.get("partial_json") and index in self._tool_index:
            call = {
                "index": self._tool_index[index],
                "function": {"arguments": delta["partial_json"]},
            }
            return [self._chunk({"tool_calls": [call]})]
        return []  # thinking and signature deltas have no place in the OpenAI chunk

    def _merge_usage(self, usage: Body) -> None:
        # message_delta counts are cumulative and may omit fields message_start already gave
        self._usage.update({key: value for key, value in usage.items() if value is not None})

    def _chunk(self, delta: Body, finish: str | None = None) -> Body:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [choice],
        }


def _messages(messages: list[Any]) -> tuple[str, list[Body]]:
    system: list[str] = []
    out: list[Body] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequest("each message must be an object", param=f"messages[{i}]")
        if message.get("role") in ("system", "developer"):
            blocks = _content_blocks(message.get("content"), f"messages[{i}]")
            system.extend(block["text"] for block in blocks if block["type"] == "text")
            continue
        blocks = _blocks(message, f"messages[{i}]")
        if not blocks:
            continue  # Anthropic refuses empty messages, and an empty turn says nothing
        role = "assistant" if message["role"] == "assistant" else "user"
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)  # Anthropic requires the roles to alternate
        else:
            out.append({"role": role, "content": blocks})
    if not out:
        raise InvalidRequest("Anthropic needs a user or assistant message", param="messages")
    return "\n\n".join(system), out


def _blocks(message: Body, where: str) -> list[Body]:
    role = message.get("role")
    if role == "user":
        return _content_blocks(message.get("content"), where)
    if role == "assistant":
        calls = message.get("tool_calls") or []
        return _content_blocks(message.get("content"), where) + _tool_uses(calls, where)
    if role == "tool":
        return [_tool_result(message, where)]
    raise InvalidRequest(f"Anthropic has no message role {role!r}", param=f"{where}.role")


def _content_blocks(content: Any, where: str) -> list[Body]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise InvalidRequest(
            "content must be a string or a list of parts", param=f"{where}.content"
        )
    blocks = [_part(part, f"{where}.content[{j}]") for j, part in enumerate(content)]
    return [block for block in blocks if block is not None]


def _part(part: Any, where: str) -> Body | None:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text":
        if not part.get("text"):
            return None  # Anthropic refuses empty text blocks
        block: Body = {"type": "text", "text": part["text"]}
    elif kind == "image_url":
        block = {"type": "image", "source": _image_source(part.get("image_url"), where)}
    else:
        raise InvalidRequest(f"Anthropic does not take content parts of type {kind!r}", param=where)
    if part.get("cache_control"):  # lets clients use Anthropic prompt caching through the gateway
        block["cache_control"] = part["cache_control"]
    return block


def _image_source(image_url: Any, where: str) -> Body:
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str) or not url:
        raise InvalidRequest("an image_url part needs a url", param=f"{where}.image_url.url")
    if not url.startswith("data:"):
        return {"type": "url", "url": url}
    header, comma, data = url[5:].partition(",")
    if not comma or not header.endswith(";base64"):
        raise InvalidRequest("image data URLs must be base64", param=f"{where}.image_url.url")
    return {"type": "base64", "media_type": header.split(";", 1)[0], "data": data}


def _tool_uses(calls: list[Any], where: str) -> list[Body]:
    blocks = []
    for j, call in enumerate(calls):
        function = call.get("function") or {}
        arguments = _arguments(function.get("arguments"), f"{where}.tool_calls[{j}]")
        block = {"type": "tool_use", "id": call.get("id"), "name": function.get("name")}
        blocks.append({**block, "input": arguments})
    return blocks


def _arguments(raw: Any, where: str) -> Body:
    if isinstance(raw, dict):
        return raw
    if not raw:
        return {}
    try:
        value = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError):
        value = None
    if not isinstance(value, dict):
        raise InvalidRequest(
            "tool call arguments must be a JSON object", param=f"{where}.function.arguments"
        )
    return value


def _tool_result(message: Body, where: str) -> Body:
    call_id = message.get("tool_call_id")
    if not call_id:
        raise InvalidRequest("a tool message needs tool_call_id", param=f"{where}.tool_call_id")
    block: Body = {"type": "tool_result", "tool_use_id": call_id}
    content = _content_blocks(message.get("content"), where)
    if content:
        block["content"] = content
    return block


def _tool_call(block: Body) -> Body:
    arguments = orjson.dumps(block.get("input") or {}).decode()
    function = {"name": block.get("name"), "arguments": arguments}
    return {"id": block.get("id"), "type": "function", "function": function}


def _max_tokens(body: Body) -> int:
    value = body.get("max_completion_tokens") or body.get("max_tokens")
    return int(value) if value else DEFAULT_MAX_TOKENS


def _copy_sampling(body: Body, out: Body) -> None:
    temperature = body.get("temperature")
    if temperature is not None:
        # OpenAI allows up to 2, Anthropic refuses above 1: keep the request working at the cap
        out["temperature"] = min(float(temperature), 1.0)
    if body.get("top_p") is not None:
        out["top_p"] = body["top_p"]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)


def _copy_tools(body: Body, out: Body) -> None:
    tools = body.get("tools")
    if not tools:
        return  # Anthropic refuses tool_choice without tools, and it means nothing there
    out["tools"] = [_tool(tool, f"tools[{i}]") for i, tool in enumerate(tools)]
    choice = _tool_choice(body.get("tool_choice"))
    if body.get("parallel_tool_calls") is False and choice.get("type") != "none":
        choice = {"type": "auto", **choice, "disable_parallel_tool_use": True}
    if choice:
        out["tool_choice"] = choice


def _tool(tool: Any, where: str) -> Body:
    if not isinstance(tool, dict) or tool.get("type") != "function":
        raise InvalidRequest("Anthropic takes only tools of type function", param=f"{where}.type")
    function = tool.get("function") or {}
    out: Body = {
        "name": function.get("name"),
        "input_schema": function.get("parameters") or _ANY_OBJECT,
    }
    if function.get("description"):
        out["description"] = function["description"]
    return out


def _tool_choice(choice: Any) -> Body:
    if choice is None:
        return {}
    if isinstance(choice, str) and choice in TOOL_CHOICES:
        return {"type": TOOL_CHOICES[choice]}
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if name:
            return {"type": "tool", "name": name}
    raise InvalidRequest(f"unsupported tool_choice {choice!r}", param="tool_choice")


def _with_format_instruction(system: str, response_format: Any) -> str:
    # Anthropic has no response_format: a firm instruction in the system prompt comes closest
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or _ANY_OBJECT
        note = (
            "Answer with a single JSON object that conforms to this JSON Schema, and nothing "
            "else: no prose, no code fences.\n" + orjson.dumps(schema).decode()
        )
    elif kind == "json_object":
        note = "Answer with a single valid JSON object, and nothing else: no prose, no code fences."
    else:
        return system
    return f"{system}\n\n{note}" if system else note
