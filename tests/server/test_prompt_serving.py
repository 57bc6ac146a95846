"""Prompt references served by the real gateway, through the official OpenAI client."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest

from controltower.domain.prompt import PromptContent, SplitArm, VariableSpec
from controltower.prompts import PromptStore
from controltower.store import open_store

from ..conftest import RunningGateway, config, running_gateway

FAST = """
models:
  - name: fast
    deployments:
      - provider: mock
        model: fast-model
"""
QUESTION = {"variables": {"question": "Where is my money?"}}


def content(tag: str) -> PromptContent:
    # the mock echoes the last user message: the answer says which version served it
    return PromptContent(
        messages=(
            {"role": "system", "content": "You answer questions about refunds."},
            {"role": "user", "content": tag + ": {{ question }}"},
        ),
        model="fast",
        params={"temperature": 0.2},
        variables={"question": VariableSpec(type="string", required=True)},
    )


def push(store: PromptStore, *tags: str) -> None:
    for tag in tags:
        store.create_version("refund-policy", content(tag), message=tag, author="ann")


def ask(gw: RunningGateway, model: str, **fields: Any) -> str:
    """The answer to the question through the prompt (one client per gateway, reused)."""
    client = gw.clients[0] if gw.clients else gw.client()
    answer = client.chat.completions.create(model=model, messages=[], extra_body=QUESTION, **fields)
    return answer.choices[0].message.content or ""


def wait_for(read: Callable[[], str], wanted: str, timeout_s: float = 10.0) -> None:
    """Poll until the gateway serves `wanted` (its snapshot refreshes in the background)."""
    deadline = time.monotonic() + timeout_s
    while (seen := _served(read)) != wanted:
        assert time.monotonic() < deadline, f"still served {seen!r}, waiting for {wanted!r}"
        time.sleep(0.05)


def _served(read: Callable[[], str]) -> str:
    try:
        return read()
    except openai.NotFoundError as exc:  # not in the gateway's snapshot yet
        return f"404 {exc.message}"


@pytest.fixture
def gateway() -> Iterator[RunningGateway]:
    with running_gateway(config(FAST)) as gw:
        yield gw


def test_label_move_and_rollback_seen_without_restart(sqlite_url: str) -> None:
    # the SQL store in the gateway's own database; label moves through the REST API
    with (
        running_gateway(config(FAST), open_store(sqlite_url)) as gw,
        httpx.Client(base_url=gw.url) as http,
    ):
        push(gw.app.prompt_store, "v1", "v2")
        label = "/api/prompts/refund-policy/labels/production"
        assert http.put(label, json={"version": 1}).status_code == 200
        production = "prompt:refund-policy@production"
        wait_for(lambda: ask(gw, production), "v1: Where is my money?")

        assert http.put(label, json={"version": 2}).status_code == 200
        wait_for(lambda: ask(gw, production), "v2: Where is my money?")

        assert http.post(f"{label}/rollback", json={}).status_code == 200
        wait_for(lambda: ask(gw, production), "v1: Where is my money?")
        assert ask(gw, "prompt:refund-policy#2") == "v2: Where is my money?"
        assert ask(gw, "prompt:refund-policy") == "v2: Where is my money?"  # latest


def test_trace_records_the_prompt_version(gateway: RunningGateway) -> None:
    push(gateway.app.prompt_store, "v1")
    wait_for(lambda: ask(gateway, "prompt:refund-policy"), "v1: Where is my money?")

    raw = gateway.client().chat.completions.with_raw_response.create(
        model="prompt:refund-policy#1", messages=[], extra_body=QUESTION, temperature=0.7
    )

    trace = gateway.trace(raw.headers["x-controltower-trace-id"])
    root = trace["spans"][0]
    assert (root["prompt_name"], root["prompt_version"]) == ("refund-policy", 1)
    assert root["model"] == "fast-model"
    assert root["parameters"]["temperature"] == 0.7  # the request's value wins
    assert root["input"][1] == {"role": "user", "content": "v1: Where is my money?"}
    assert trace["metadata"]["prompt_version"] == 1
    assert trace["name"] == "chat prompt:refund-policy#1"


def test_streamed_prompt(gateway: RunningGateway) -> None:
    push(gateway.app.prompt_store, "v1")
    wait_for(lambda: ask(gateway, "prompt:refund-policy"), "v1: Where is my money?")
    stream = gateway.client().chat.completions.create(
        model="prompt:refund-policy", messages=[], extra_body=QUESTION, stream=True
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "v1: Where is my money?"


def test_errors_in_the_openai_format(gateway: RunningGateway) -> None:
    push(gateway.app.prompt_store, "v1")
    wait_for(lambda: ask(gateway, "prompt:refund-policy"), "v1: Where is my money?")
    client = gateway.client()
    for model in ("prompt:nope", "prompt:refund-policy@staging", "prompt:refund-policy#5"):
        with pytest.raises(openai.NotFoundError) as info:
            client.chat.completions.create(model=model, messages=[], extra_body=QUESTION)
        assert info.value.body["param"] == "model"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(
            model="prompt:refund-policy", messages=[], extra_body={"variables": {}}
        )
    assert "`question` is required" in bad.value.body["message"]  # type: ignore[index]
    # a plain alias still needs messages
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="fast", messages=[])


def test_models_lists_prompt_references(gateway: RunningGateway) -> None:
    push(gateway.app.prompt_store, "v1")
    gateway.app.prompt_store.move_label("refund-policy", "production", 1, actor=None)
    wait_for(lambda: ask(gateway, "prompt:refund-policy@production"), "v1: Where is my money?")
    ids = [m.id for m in gateway.client().models.list()]
    assert ids == ["fast", "prompt:refund-policy", "prompt:refund-policy@production"]


def test_split_proportions_and_stickiness(gateway: RunningGateway) -> None:
    store = gateway.app.prompt_store
    push(store, "v1", "v2")
    store.split_label("refund-policy", "production", [SplitArm(1, 90), SplitArm(2, 10)], actor=None)
    production = "prompt:refund-policy@production"
    # the label exists only as a split: once it is served, the split is
    wait_for(lambda: ask(gateway, production, user="probe")[:2] and "served", "served")

    users = 2000
    served = {f"user-{i}": ask(gateway, production, user=f"user-{i}") for i in range(users)}
    counts = Counter(answer.split(":")[0] for answer in served.values())
    assert counts.keys() == {"v1", "v2"}
    assert 0.87 < counts["v1"] / users < 0.93
    # the same user always gets the same version, by the `user` field or the header
    for i in range(0, users, 40):
        user = f"user-{i}"
        assert ask(gateway, production, user=user) == served[user]
        headers = {"x-controltower-user": user}
        assert ask(gateway, production, extra_headers=headers) == served[user]
