"""Messages whose parts have the wrong types get a 400 naming the part, and a failure that
is nobody's fault but a bug still answers in the OpenAI format and leaves a trace."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from controltower.providers.mock import MockProvider
from tests.conftest import DEMO, config, running_gateway


@pytest.mark.parametrize(
    ("message", "param"),
    [
        ({"role": "user", "content": [{"type": "text", "text": 5}]}, "messages[0].content[0].text"),
        (
            {"role": "user", "content": [{"type": "text", "text": None}]},
            "messages[0].content[0].text",
        ),
        ({"role": "user", "content": ["hi"]}, "messages[0].content[0]"),
        ({"role": "user", "content": [{"text": "hi"}]}, "messages[0].content[0]"),
        ({"role": "user", "content": "hi", "name": 3}, "messages[0].name"),
        ({"role": "assistant", "content": None, "tool_calls": "x"}, "messages[0].tool_calls"),
        ({"role": "assistant", "content": None, "tool_calls": ["x"]}, "messages[0].tool_calls[0]"),
        (
            {"role": "assistant", "content": None, "tool_calls": [{"function": "f"}]},
            "messages[0].tool_calls[0]",
        ),
        (
            {"role": "tool", "content": "42", "tool_call_id": ["c1"]},
            "messages[0].tool_call_id",
        ),
    ],
)
def test_ill_typed_parts_are_400_naming_the_part(message: dict[str, Any], param: str) -> None:
    with running_gateway(config(DEMO)) as gw:
        answer = httpx.post(
            f"{gw.base_url}/chat/completions", json={"model": "demo", "messages": [message]}
        )
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["param"] == param
        trace = gw.trace(answer.headers["x-controltower-trace-id"])
        assert trace["status"] == "error"


def test_a_bug_in_a_provider_is_a_500_in_the_openai_format_with_a_trace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(self: MockProvider, request: Any) -> Any:
        raise KeyError("a bug")

    monkeypatch.setattr(MockProvider, "chat", broken)
    with running_gateway(config(DEMO)) as gw, httpx.Client(base_url=gw.url) as client:
        body = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}
        answer = client.post("/v1/chat/completions", json=body)
        assert answer.status_code == 500
        error = answer.json()["error"]
        assert error["type"] == "api_error" and "KeyError" in error["message"]
        trace = gw.trace(answer.headers["x-controltower-trace-id"])
        assert trace["status"] == "error"
        assert client.get("/health").status_code == 200  # the same connection, still open
