"""Prompts for the UI tests: a chat prompt in a folder with labels and a split, and a text one."""

from __future__ import annotations

from controltower.domain.prompt import PromptContent, SplitArm, VariableSpec
from controltower.prompts import InMemoryPromptStore

NAME = "support/refund-policy"
TEXT_NAME = "greeting"
SYSTEM = "You answer questions about our refund policy."


def refund(days: int, temperature: float) -> PromptContent:
    """A version of the refund prompt: pro customers get `days` days."""
    system = SYSTEM + ' {% if tier == "pro" %}Pro customers get ' + str(days) + " days.{% endif %}"
    return PromptContent(
        messages=(
            {"role": "system", "content": system},
            {"role": "user", "content": "{{ question }}"},
        ),
        model="demo",
        params={"temperature": temperature, "max_tokens": 400},
        variables={
            "question": VariableSpec(type="string", required=True),
            "tier": VariableSpec(type="string", enum=("free", "pro"), default="free"),
            "max_items": VariableSpec(type="integer", description="how many items at most"),
        },
    )


def seed() -> InMemoryPromptStore:
    """Three versions of the refund prompt with production, staging and a canary split."""
    store = InMemoryPromptStore()
    for i, (days, temp) in enumerate([(30, 0.2), (60, 0.2), (60, 0.4)], start=1):
        store.create_version(NAME, refund(days, temp), message=f"change {i}", author="ana")
    store.move_label(NAME, "production", 1, actor="ana", protect=True)
    store.move_label(NAME, "production", 2, actor="ben", force=True)
    store.move_label(NAME, "staging", 3, actor="ben")
    store.split_label(NAME, "canary", [SplitArm(2, 90), SplitArm(3, 10)], actor="ben")
    text = PromptContent(text="Say hello to {{ who }}.", model="demo")
    store.create_version(TEXT_NAME, text, message=None, author=None)
    return store
