"""Serving `prompt:` references: resolution, rendering, splits, refresh and the trace."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
import pytest

from controltower.domain import TraceRecord
from controltower.domain.prompt import PromptContent, PromptLabel, SplitArm, VariableSpec
from controltower.errors import InvalidRequest, ModelNotFound
from controltower.gateway import Caller, Gateway, PromptResolver
from controltower.gateway.prompts import parse_reference
from controltower.prompts import InMemoryPromptStore, PromptRenderError, PromptStore
from controltower.prompts.content import pick_version
from controltower.providers.base import ChatCompletion
from controltower.providers.mock import MockProvider
from controltower.settings import Deployment, ModelAlias, Settings
from controltower.store import open_prompt_store


def content(word: str, **fields: Any) -> PromptContent:
    return PromptContent(
        messages=(
            {"role": "system", "content": f"{word}: answer about {{{{ topic }}}}."},
            {"role": "user", "content": "{{ question }}"},
        ),
        model="fast",
        params={"temperature": 0.2, "max_tokens": 50},
        variables={
            "question": VariableSpec(type="string", required=True),
            "topic": VariableSpec(type="string", enum=("refunds", "billing"), default="refunds"),
        },
        **fields,
    )


def store_with(*words: str) -> InMemoryPromptStore:
    store = InMemoryPromptStore()
    for word in words:
        store.create_version("support", content(word), message=word, author="ann")
    return store


def resolver(store: PromptStore) -> PromptResolver:
    made = PromptResolver(store)
    assert made.refresh()
    return made


def ask_body(model: str, **fields: Any) -> dict[str, Any]:
    return {"model": model, "variables": {"question": "Where is my money?"}, **fields}


def test_references() -> None:
    assert parse_reference("prompt:a/b") == ("a/b", None, None)
    assert parse_reference("prompt:a@production") == ("a", "production", None)
    assert parse_reference("prompt:a#12") == ("a", None, 12)
    for bad in ("prompt:", "prompt:a@", "prompt:@x", "prompt:a#", "prompt:a#x", "prompt:a#0"):
        with pytest.raises(InvalidRequest) as info:
            parse_reference(bad)
        assert info.value.param == "model"


def test_resolve_latest_label_and_version() -> None:
    store = store_with("one", "two")
    store.move_label("support", "production", 1, actor="ann")
    prompts = resolver(store)
    caller = Caller()

    body, use = prompts.resolve(ask_body("prompt:support"), caller)
    assert (use.name, use.version, use.label) == ("support", 2, None)
    assert body == {
        "model": "fast",
        "temperature": 0.2,
        "max_tokens": 50,
        "messages": [
            {"role": "system", "content": "two: answer about refunds."},
            {"role": "user", "content": "Where is my money?"},
        ],
    }
    _, use = prompts.resolve(ask_body("prompt:support@production"), caller)
    assert (use.version, use.label) == (1, "production")
    _, use = prompts.resolve(ask_body("prompt:support#1"), caller)
    assert use.version == 1


def test_request_parameters_override_and_messages_follow() -> None:
    prompts = resolver(store_with("one"))
    later = [{"role": "user", "content": "And for pro?"}]
    body, _ = prompts.resolve(
        ask_body("prompt:support", temperature=0.9, stream=True, messages=later), Caller()
    )
    assert (body["temperature"], body["max_tokens"], body["stream"]) == (0.9, 50, True)
    assert body["messages"][-1] == later[0] and len(body["messages"]) == 3
    assert "variables" not in body


def test_text_prompt_is_one_user_message() -> None:
    store = InMemoryPromptStore()
    text = PromptContent(text="Summarise: {{ doc }}", model="fast")
    store.create_version("summary", text, message=None, author=None)
    body, _ = resolver(store).resolve(
        {"model": "prompt:summary", "variables": {"doc": "abc"}}, Caller()
    )
    assert body["messages"] == [{"role": "user", "content": "Summarise: abc"}]


@pytest.mark.parametrize(
    ("model", "wanted"),
    [
        ("prompt:nope", "prompt `nope` not found"),
        ("prompt:support@staging", "has no label `staging`"),
        ("prompt:support#9", "has no version 9"),
    ],
)
def test_unknown_prompt_label_or_version(model: str, wanted: str) -> None:
    with pytest.raises(ModelNotFound) as info:
        resolver(store_with("one")).resolve(ask_body(model), Caller())
    assert wanted in info.value.message
    assert (info.value.status, info.value.param) == (404, "model")


def test_render_errors_name_the_variable() -> None:
    prompts = resolver(store_with("one"))
    with pytest.raises(PromptRenderError) as info:
        prompts.resolve({"model": "prompt:support"}, Caller())
    assert "`question`" in info.value.message and info.value.status == 400
    with pytest.raises(PromptRenderError, match="`topic` must be one of"):
        prompts.resolve(
            ask_body("prompt:support", variables={"question": "q", "topic": "x"}), Caller()
        )
    with pytest.raises(InvalidRequest, match="`variables` must be a JSON object"):
        prompts.resolve(ask_body("prompt:support", variables=["q"]), Caller())


def test_label_moves_seen_after_refresh_only_when_changed() -> None:
    store = store_with("one", "two")
    store.move_label("support", "production", 1, actor="ann")
    prompts = resolver(store)
    assert not prompts.refresh()  # nothing changed: nothing reloaded

    store.move_label("support", "production", 2, actor="ann")
    _, use = prompts.resolve(ask_body("prompt:support@production"), Caller())
    assert use.version == 1  # the snapshot is what requests see, until the next refresh
    assert prompts.refresh()
    _, use = prompts.resolve(ask_body("prompt:support@production"), Caller())
    assert use.version == 2

    store.rollback("support", "production", actor="ann")
    assert prompts.refresh()
    _, use = prompts.resolve(ask_body("prompt:support@production"), Caller())
    assert use.version == 1
    assert "prompt:support@production" in prompts.references()


def split_label(*arms: tuple[int, float]) -> PromptLabel:
    split = tuple(SplitArm(v, w) for v, w in arms)
    return PromptLabel("support", "production", arms[0][0], split=split)


def test_split_proportions_and_stickiness() -> None:
    label = split_label((7, 90), (8, 10))
    counts = Counter(pick_version(label, f"user:{i}") for i in range(4000))
    assert 0.87 < counts[7] / 4000 < 0.93
    for i in range(50):
        assert len({pick_version(label, f"user:{i}") for _ in range(5)}) == 1
    # without a user or session the arm is random, still by weight
    random_counts = Counter(pick_version(label, None) for _ in range(4000))
    assert 0.85 < random_counts[7] / 4000 < 0.95


def test_split_is_sticky_per_user_then_session() -> None:
    store = store_with("one", "two")
    store.split_label("support", "ab", [SplitArm(1, 50), SplitArm(2, 50)], actor="ann")
    prompts = resolver(store)

    def version_of(caller: Caller, **fields: Any) -> int:
        return prompts.resolve(ask_body("prompt:support@ab", **fields), caller)[1].version

    for i in range(20):
        assert len({version_of(Caller(user_id=f"u{i}")) for _ in range(5)}) == 1
        assert len({version_of(Caller(), user=f"u{i}") for _ in range(5)}) == 1
        assert len({version_of(Caller(session_id=f"s{i}")) for _ in range(5)}) == 1
    # the `user` field and the header are the same user
    for i in range(20):
        assert version_of(Caller(), user=f"u{i}") == version_of(Caller(user_id=f"u{i}"))
    # over many users both arms are used
    assert {version_of(Caller(user_id=f"u{i}")) for i in range(100)} == {1, 2}


class Recorded:
    def __init__(self) -> None:
        self.records: list[TraceRecord] = []

    def __call__(self, record: TraceRecord) -> None:
        self.records.append(record)


def gateway(store: InMemoryPromptStore) -> tuple[Gateway, Recorded]:
    deployment = Deployment(provider="mock", model="fast-model", name="fast")
    settings = Settings(models=[ModelAlias(name="fast", deployments=[deployment])])
    recorded = Recorded()
    return Gateway(settings, MockProvider, recorded, resolver(store)), recorded


async def test_gateway_serves_a_prompt_and_records_its_version() -> None:
    store = store_with("one", "two")
    store.move_label("support", "production", 1, actor="ann")
    gw, recorded = gateway(store)

    result = await gw.chat(ask_body("prompt:support@production"), Caller(metadata={"a": 1}))

    assert isinstance(result, ChatCompletion)
    answer = orjson.loads(result.body)["choices"][0]["message"]["content"]
    assert answer == "Where is my money?"  # the mock echoes the rendered user message
    (record,) = recorded.records
    root = record.spans[0]
    assert (root.prompt_name, root.prompt_version) == ("support", 1)
    assert root.name == record.trace.name == "chat prompt:support@production"
    assert root.input[0] == {"role": "system", "content": "one: answer about refunds."}
    assert root.parameters == {"temperature": 0.2, "max_tokens": 50}
    assert root.attributes["prompt_variables"] == {"question": "Where is my money?"}
    assert root.attributes["prompt_label"] == "production"
    assert record.trace.metadata == {"a": 1, "prompt_name": "support", "prompt_version": 1}


async def test_gateway_errors_for_prompts() -> None:
    store = store_with("one")
    store.create_version(
        "other", PromptContent(text="hi", model="missing"), message=None, author=None
    )
    gw, recorded = gateway(store)
    with pytest.raises(ModelNotFound, match="calls the model 'missing'"):
        await gw.chat({"model": "prompt:other"}, Caller())
    with pytest.raises(ModelNotFound, match="does not exist on this gateway"):
        await gw.chat({"model": "not-an-alias", "messages": []}, Caller())
    gw.prompts = None  # a gateway without prompts treats the reference as an unknown alias
    with pytest.raises(ModelNotFound, match="'prompt:support' does not exist"):
        await gw.chat(ask_body("prompt:support"), Caller())
    assert recorded.records == []


@pytest.mark.parametrize("url_fixture", ["sqlite_url", "postgres_url"])
def test_sql_store_marker_moves_with_every_change(
    url_fixture: str, request: pytest.FixtureRequest
) -> None:
    store = open_prompt_store(request.getfixturevalue(url_fixture))
    try:
        first = store.version_marker()
        store.create_version("support", content("one"), message=None, author=None)
        second = store.version_marker()
        store.move_label("support", "production", 1, actor=None)
        third = store.version_marker()
        assert len({repr(first), repr(second), repr(third)}) == 3
        assert store.version_marker() == third
        prompts = resolver(store)
        _, use = prompts.resolve(ask_body("prompt:support@production"), Caller())
        assert use.version == 1
    finally:
        store.close()
