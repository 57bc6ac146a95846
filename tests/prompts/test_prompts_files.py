"""Prompt files: parsed with FILE:LINE field: problem; fix: …, and written back."""

from __future__ import annotations

from pathlib import Path

import pytest

from controltower.domain.prompt import PromptVersion, VariableSpec
from controltower.errors import ConfigError
from controltower.prompts import content_hash, dump_prompt, parse_prompt, read_prompt_file

REFUND = """\
name: refund-policy
model: fast
params: {temperature: 0.2, max_tokens: 400}
variables:
  question: {type: string, required: true}
  tier: {type: string, enum: [free, pro], default: free}
messages:
  - role: system
    content: |
      You answer questions about our refund policy.
      {% if tier == "pro" %}Pro customers get 60 days.{% endif %}
  - role: user
    content: "{{ question }}"
"""


def problems(text: str, expected: str | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_prompt(text, "p.yaml", expected_name=expected)
    return caught.value.problems


def test_the_issue_example_parses() -> None:
    name, content = parse_prompt(REFUND, "refund-policy.yaml", expected_name="refund-policy")
    assert name == "refund-policy"
    assert content.model == "fast" and content.params == {"temperature": 0.2, "max_tokens": 400}
    assert content.variables["tier"] == VariableSpec("string", enum=("free", "pro"), default="free")
    assert content.variables["question"].required
    assert content.messages is not None and content.messages[1]["content"] == "{{ question }}"
    assert content.text is None


def test_text_prompts_and_bare_variables() -> None:
    name, content = parse_prompt("name: t\nvariables:\n  x:\ntext: hi {{ x }}\n", "t.yaml")
    assert (name, content.text, content.variables) == ("t", "hi {{ x }}", {"x": VariableSpec()})


def test_unknown_keys_name_line_field_and_fix() -> None:
    text = REFUND.replace("model: fast\n", "model: fast\nmodle: x\n").replace(
        "{type: string, required: true}", "{type: string, requird: true}"
    )
    found = problems(text)
    assert "p.yaml:3 modle: unknown field; fix: remove it, or check its spelling" in found[0]
    assert found[1].startswith("p.yaml:6 variables.question.requird: unknown field")


def test_the_name_must_match_the_path() -> None:
    found = problems(REFUND, expected="support/refund")
    assert found == [
        "p.yaml:1 name: `refund-policy` does not match the file's path, which names it "
        "`support/refund`; fix: write `name: support/refund`, or move the file to "
        "refund-policy.yaml"
    ]
    assert "name: is missing" in problems("text: x\n")[0]
    assert "not a valid prompt name ('Big')" in problems("name: Big\ntext: x\n")[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: a\n", "p.yaml:1 (top level): a prompt needs either `messages` or `text`"),
        ("name: a\ntext: x\nmessages: []\n", "not both nor neither"),
        ("name: a\nmessages: []\n", "p.yaml:2 messages: must be a non-empty list"),
        ("name: a\nmessages:\n  - role: bot\n    content: x\n", "p.yaml:3 messages[0].role: "),
        ("name: a\nmessages:\n  - role: user\n", "p.yaml:3 messages[0].content: must be a str"),
        ("name: a\nparams: 3\ntext: x\n", "p.yaml:2 params: must be a mapping"),
        ("name: a\nmodel: [x]\ntext: x\n", "p.yaml:2 model: must be a model alias"),
        ("name: a\nvariables:\n  x: {type: text}\ntext: x\n", "variables.x.type: unknown type"),
        ("name: a\nvariables:\n  x: {type: integer, default: a}\ntext: x\n", "must be an int"),
        ("name: a\nvariables:\n  x: {enum: [a], default: b}\ntext: x\n", "must be one of 'a'"),
        ("name: a\nvariables:\n  x-y: {}\ntext: x\n", "not a valid variable name"),
        ("- a\n", "p.yaml:1 (top level): a prompt file must be a YAML mapping"),
    ],
)
def test_problems(text: str, expected: str) -> None:
    assert expected in "\n".join(problems(text))


def test_yaml_syntax_errors_name_the_line() -> None:
    found = problems("name: a\ntext: [x\nmodel: b\n")
    assert found[0].startswith("p.yaml:") and "not valid YAML" in found[0]


def test_template_syntax_errors_name_the_file_line() -> None:
    text = "name: a\nmessages:\n  - role: user\n    content: |\n      ok\n      {% if %}\n"
    found = problems(text)
    assert found[0].startswith("p.yaml:6 messages[0].content: template syntax error")


def test_a_template_variable_missing_from_the_schema_is_named() -> None:
    text = "name: a\nvariables:\n  x: {}\ntext: '{{ x }} {{ y }}'\n"
    assert problems(text) == [
        "p.yaml:4 text: the template uses `y`, which is not under `variables`; "
        "fix: declare `y` under variables, or remove it from the template"
    ]


def test_read_a_file_in_a_folder(tmp_path: Path) -> None:
    path = tmp_path / "support" / "refund.yaml"
    path.parent.mkdir()
    path.write_bytes(b"name: support/refund\r\ntext: hi\r\n")
    found = read_prompt_file(path, tmp_path)
    assert (found.name, found.source) == ("support/refund", "name: support/refund\r\ntext: hi\r\n")


def test_dump_parses_back_to_the_same_content() -> None:
    name, content = parse_prompt(REFUND, "refund-policy.yaml")
    dumped = dump_prompt(PromptVersion(name, 1, content, content_hash(content), 0))
    assert "content: |\n" in dumped and dumped.startswith("name: refund-policy\nmodel: fast\n")
    again = parse_prompt(dumped, "x.yaml", expected_name="refund-policy")
    assert again == (name, content)
    text_name, text = parse_prompt("name: t\ntext: hi\n", "t.yaml")
    assert dump_prompt(PromptVersion(text_name, 1, text, "h", 0)) == "name: t\ntext: hi\n"
