"""Issue 8 through a real server: render limits, refused requests traced, typed parameters."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grimp
import httpx
import openai
import pytest
from tests.conftest import RunningGateway, config, running_gateway

from controltower.domain.prompt import PromptContent, VariableSpec

FAST = """
prompt_refresh_s: 0.05
models:
  - name: fast
    deployments:
      - provider: mock
        model: fast-model
"""
MESSAGES = [{"role": "user", "content": "hi"}]
# a template that never ends on its own (10**8 loop turns), and one that writes 100 MB
SLOW = "{% for a in range(10000) %}{% for b in range(10000) %}{% endfor %}{% endfor %}"
HUGE = "{% for i in range(10000) %}{{ 'x' * 10000 }}{% endfor %}"


@pytest.fixture
def gateway() -> Iterator[RunningGateway]:
    with running_gateway(config(FAST)) as gw:
        yield gw


def push(gw: RunningGateway, name: str, text: str, **variables: VariableSpec) -> None:
    """Store a prompt and wait until the gateway serves it."""
    content = PromptContent(text=text, model="fast", variables=variables)
    gw.app.prompt_store.create_version(name, content, message=None, author=None)
    deadline = time.monotonic() + 10
    while f"prompt:{name}" not in gw.app.prompts.references():
        assert time.monotonic() < deadline, f"prompt {name} is not served"
        time.sleep(0.02)


def stored(gw: RunningGateway, trace_id: str) -> dict[str, Any]:
    """The trace as GET /api/traces/{id} answers it, once written."""
    assert gw.app.writer.flush(5)
    answer = httpx.get(f"{gw.url}/api/traces/{trace_id}")
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


# -- 1. prompt rendering: off the loop, within limits ---------------------------------------


def test_a_slow_render_holds_up_neither_health_nor_other_calls(gateway: RunningGateway) -> None:
    push(gateway, "slow", SLOW)
    with ThreadPoolExecutor(1) as pool, httpx.Client(base_url=gateway.url, timeout=60) as http:
        body = {"model": "prompt:slow", "messages": []}
        slow = pool.submit(http.post, "/v1/chat/completions", json=body)
        time.sleep(0.2)  # the render is under way
        health = http.get("/health")
        other = http.post("/v1/chat/completions", json={"model": "fast", "messages": MESSAGES})
        assert not slow.done(), "the render held up /health and the other call"
        assert health.status_code == 200 and other.status_code == 200
        answer = slow.result()
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "prompt_render_limit")
    assert "did not render within" in error["message"]


def test_a_huge_render_is_a_400_in_the_openai_format(gateway: RunningGateway) -> None:
    push(gateway, "huge", HUGE)
    with pytest.raises(openai.BadRequestError) as info:
        gateway.client().chat.completions.create(model="prompt:huge", messages=[])
    assert info.value.code == "prompt_render_limit"
    assert "characters" in info.value.message


def test_the_render_route_has_the_same_limits(gateway: RunningGateway) -> None:
    push(gateway, "slow", SLOW)
    with ThreadPoolExecutor(1) as pool, httpx.Client(base_url=gateway.url, timeout=60) as http:
        slow = pool.submit(http.post, "/api/prompts/slow/render", json={"variables": {}})
        time.sleep(0.2)
        assert http.get("/health").status_code == 200
        assert not slow.done()
        answer = slow.result()
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "prompt_render_limit"
    huge = httpx.post(f"{gateway.url}/api/prompts/huge/render", json={})
    assert huge.status_code == 404  # not pushed: the route still answers as before


# -- 2. no import loop between the gateway's prompts and its service -----------------------


def test_gateway_prompts_does_not_import_the_service() -> None:
    graph = grimp.build_graph("controltower", cache_dir=None)
    chain = graph.find_shortest_chain(
        importer="controltower.gateway.prompts", imported="controltower.gateway.service"
    )
    assert chain is None, f"import loop: {chain}"


# -- 3. a request refused before any provider call is still traced --------------------------


def refused(call: Any) -> tuple[openai.APIStatusError, str]:
    with pytest.raises(openai.APIStatusError) as info:
        call()
    return info.value, info.value.response.headers["x-controltower-trace-id"]


def test_refused_requests_leave_an_error_trace(gateway: RunningGateway) -> None:
    push(gateway, "ask", "Q: {{ question }}", question=VariableSpec("string", required=True))
    client = gateway.client()
    chat = client.chat.completions.create
    cases: list[tuple[Any, int, str]] = [
        (lambda: chat(model="nope", messages=MESSAGES), 404, "'nope' does not exist"),
        (lambda: chat(model="prompt:missing", messages=[]), 404, "prompt `missing` not found"),
        (lambda: chat(model="prompt:ask", messages=[]), 400, "variable `question` is required"),
        (
            lambda: chat(model="prompt:ask", messages=[], extra_body={"variables": {"q": 1}}),
            400,
            "unknown variable `q`",
        ),
        (
            lambda: chat(model="fast", messages=MESSAGES, temperature="hot"),  # type: ignore[arg-type]
            400,
            "`temperature` must be a number",
        ),
        (lambda: client.embeddings.create(model="nope", input="x"), 404, "does not exist"),
    ]
    for call, status, phrase in cases:
        error, trace_id = refused(call)
        assert error.status_code == status and phrase in error.message
        trace = stored(gateway, trace_id)
        assert trace["status"] == "error"
        (root,) = trace["spans"]
        assert root["status"] == "error" and phrase in root["error"]


def test_an_unparsable_body_is_traced_too(gateway: RunningGateway) -> None:
    answer = httpx.post(f"{gateway.base_url}/chat/completions", content=b"{nope")
    assert answer.status_code == 400
    trace = stored(gateway, answer.headers["x-controltower-trace-id"])
    assert trace["status"] == "error" and "not valid JSON" in trace["spans"][0]["error"]


def test_a_refusal_continues_the_callers_trace(gateway: RunningGateway) -> None:
    parent = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    answer = httpx.post(
        f"{gateway.base_url}/chat/completions",
        json={"model": "nope", "messages": MESSAGES},
        headers={"traceparent": parent, "x-controltower-user": "ann"},
    )
    assert answer.headers["x-controltower-trace-id"] == "ab" * 16
    trace = stored(gateway, "ab" * 16)
    assert trace["user_id"] == "ann" and trace["spans"][0]["parent_id"] == "cd" * 8


# -- 4. wrongly typed known parameters ---------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"temperature": "hot"}, "temperature"),
        ({"temperature": True}, "temperature"),
        ({"top_p": [1]}, "top_p"),
        ({"max_tokens": "x"}, "max_tokens"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_completion_tokens": 1.5}, "max_completion_tokens"),
        ({"n": 1.5}, "n"),
        ({"n": "2"}, "n"),
        ({"stream": "yes"}, "stream"),
        ({"stream": 1}, "stream"),
        ({"seed": 1.5}, "seed"),
        ({"stop": 5}, "stop"),
        ({"stop": ["a", 1]}, "stop"),
        ({"presence_penalty": "high"}, "presence_penalty"),
        ({"logit_bias": [1]}, "logit_bias"),
        ({"tools": {"type": "function"}}, "tools"),
        ({"tool_choice": 3}, "tool_choice"),
        ({"response_format": "json"}, "response_format"),
        ({"user": 7}, "user"),
        ({"stream_options": True}, "stream_options"),
        ({"messages": "hi"}, "messages"),
        ({"messages": {"role": "user"}}, "messages"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ],
)
def test_wrongly_typed_parameters_are_400_naming_the_field(
    gateway: RunningGateway, fields: dict[str, Any], param: str
) -> None:
    body = {"model": "fast", "messages": MESSAGES, **fields}
    answer = httpx.post(f"{gateway.base_url}/chat/completions", json=body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert f"`{param}`" in error["message"]


def test_the_openai_client_sees_a_bad_parameter_as_bad_request(gateway: RunningGateway) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        gateway.client().chat.completions.create(
            model="fast",
            messages=MESSAGES,
            max_tokens="x",  # type: ignore[arg-type]
        )
    assert info.value.param == "max_tokens"


@pytest.mark.parametrize(
    ("fields", "param"),
    [({"dimensions": "x"}, "dimensions"), ({"encoding_format": 1}, "encoding_format")],
)
def test_wrongly_typed_embedding_parameters_are_400(
    gateway: RunningGateway, fields: dict[str, Any], param: str
) -> None:
    body = {"model": "fast", "input": "x", **fields}
    answer = httpx.post(f"{gateway.base_url}/embeddings", json=body)
    assert answer.status_code == 400 and answer.json()["error"]["param"] == param


def test_null_and_well_typed_parameters_pass(gateway: RunningGateway) -> None:
    body = {
        "model": "fast",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "temperature": 0,
        "top_p": 0.5,
        "max_tokens": 5,
        "n": 2,
        "stop": ["x"],
        "seed": None,
        "user": "ann",
        "tool_choice": "none",
        "stream": False,
    }
    answer = httpx.post(f"{gateway.base_url}/chat/completions", json=body)
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["choices"]) == 2
