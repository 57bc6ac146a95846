"""Content hashes, diffs, and the rules for names and splits."""

from __future__ import annotations

import pytest

from controltower.domain.prompt import PromptContent, PromptVersion, SplitArm, VariableSpec
from controltower.errors import InvalidRequest
from controltower.prompts import (
    check_label_name,
    check_prompt_name,
    check_split,
    content_from_dict,
    content_hash,
    content_to_dict,
    diff_versions,
)

A = PromptContent(
    messages=({"role": "system", "content": "Be brief.\nBe kind."},),
    model="fast",
    params={"temperature": 0.2, "max_tokens": 10},
    variables={"q": VariableSpec("string", required=True, enum=("a",), description="d")},
)


def test_hash_is_canonical_and_round_trips() -> None:
    reordered = PromptContent(
        messages=A.messages,
        model="fast",
        params={"max_tokens": 10, "temperature": 0.2},
        variables=A.variables,
    )
    assert content_hash(A) == content_hash(reordered)
    assert content_hash(A) != content_hash(PromptContent(text="x"))
    assert content_from_dict(content_to_dict(A)) == A


def test_diff_shows_template_and_config_changes() -> None:
    b = PromptContent(
        messages=({"role": "system", "content": "Be brief.\nBe warm."},),
        model="smart",
        params=A.params,
        variables=A.variables,
    )
    diff = diff_versions(PromptVersion("p", 1, A, "1", 0), PromptVersion("p", 2, b, "2", 0))
    assert "--- p#1 template\n+++ p#2 template\n" in diff.template
    assert "-Be kind.\n+Be warm.\n" in diff.template
    assert "-model: fast\n+model: smart\n" in diff.config
    same = diff_versions(PromptVersion("p", 1, A, "1", 0), PromptVersion("p", 1, A, "1", 0))
    assert same.text == ""


@pytest.mark.parametrize("name", ["refund-policy", "support/refund", "a.b_c-1"])
def test_good_prompt_names(name: str) -> None:
    assert check_prompt_name(name) == name


@pytest.mark.parametrize("name", ["", "Refund", "a//b", "/a", "a/", "a b", "-a"])
def test_bad_prompt_names(name: str) -> None:
    with pytest.raises(InvalidRequest, match="invalid prompt name"):
        check_prompt_name(name)


def test_label_names_and_latest() -> None:
    assert check_label_name("prod.eu-1_a") == "prod.eu-1_a"
    assert check_label_name("latest", movable=False) == "latest"
    for bad in ["", "Prod", "a/b", "x" * 65]:
        with pytest.raises(InvalidRequest, match="invalid label"):
            check_label_name(bad)
    with pytest.raises(InvalidRequest, match="cannot be moved"):
        check_label_name("latest")


def test_splits() -> None:
    arms = [SplitArm(7, 90), SplitArm(8, 10)]
    assert check_split(arms) == tuple(arms)
    for bad in ([SplitArm(7, 1)], [SplitArm(7, 1), SplitArm(7, 2)]):
        with pytest.raises(InvalidRequest, match="two or more different versions"):
            check_split(bad)
    with pytest.raises(InvalidRequest, match="positive"):
        check_split([SplitArm(7, 1), SplitArm(8, 0)])
