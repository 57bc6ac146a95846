"""Rendering: variables checked against the schema first, then Jinja2 in a sandbox."""

from __future__ import annotations

from typing import Any

import pytest

from controltower.domain.prompt import PromptContent, PromptVersion, VariableSpec
from controltower.prompts import PromptRenderer, PromptRenderError, content_hash, render


def version(
    text: str | None = None,
    messages: list[dict[str, Any]] | None = None,
    variables: dict[str, VariableSpec] | None = None,
    number: int = 1,
) -> PromptVersion:
    content = PromptContent(
        messages=tuple(messages) if messages is not None else None,
        text=text,
        model="fast",
        params={"temperature": 0.2},
        variables=variables or {},
    )
    return PromptVersion("p", number, content, content_hash(content), 0)


REFUND = version(
    messages=[
        {"role": "system", "content": 'Refunds.{% if tier == "pro" %} 60 days.{% endif %}'},
        {"role": "user", "content": "{{ question }}"},
    ],
    variables={
        "question": VariableSpec("string", required=True),
        "tier": VariableSpec("string", enum=("free", "pro"), default="free"),
    },
)


def test_simple_variables_conditionals_and_defaults() -> None:
    free = render(REFUND, {"question": "Can I return it?"})
    assert free.messages == (
        {"role": "system", "content": "Refunds."},
        {"role": "user", "content": "Can I return it?"},
    )
    assert (free.model, free.params, free.text) == ("fast", {"temperature": 0.2}, None)
    pro = render(REFUND, {"question": "q", "tier": "pro"})
    assert pro.messages is not None and pro.messages[0]["content"] == "Refunds. 60 days."


def test_loops_and_text_templates_keep_the_trailing_newline() -> None:
    v = version(
        text="Items:\n{% for item in items %}- {{ item }}\n{% endfor %}",
        variables={"items": VariableSpec("array", required=True)},
    )
    assert render(v, {"items": ["a", "b"]}).text == "Items:\n- a\n- b\n"


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({}, "variable `question` is required"),
        ({"question": 3}, "variable `question` must be a string, got int"),
        ({"question": "q", "tier": "gold"}, "variable `tier` must be one of 'free', 'pro'"),
        ({"question": "q", "tone": "dry"}, "unknown variable `tone`; this prompt takes:"),
    ],
)
def test_variables_are_checked_against_the_schema(variables: dict[str, Any], expected: str) -> None:
    with pytest.raises(PromptRenderError, match=expected):
        render(REFUND, variables)


@pytest.mark.parametrize(
    ("kind", "good", "bad", "phrase"),
    [
        ("number", 1.5, True, "a number"),
        ("integer", 2, 2.5, "an integer"),
        ("boolean", False, 0, "a boolean"),
        ("object", {"a": 1}, [1], "an object"),
    ],
)
def test_each_type(kind: Any, good: Any, bad: Any, phrase: str) -> None:
    v = version(text="{{ x }}", variables={"x": VariableSpec(kind, required=True)})
    assert render(v, {"x": good}).text == str(good)
    with pytest.raises(PromptRenderError, match=f"variable `x` must be {phrase}"):
        render(v, {"x": bad})


def test_an_optional_variable_without_default_is_none() -> None:
    v = version(
        text="{% if note %}{{ note }}{% else %}none{% endif %}",
        variables={"note": VariableSpec("string")},
    )
    assert render(v, {}).text == "none"


def test_without_a_schema_the_template_names_are_required() -> None:
    v = version(text="{% for i in range(2) %}{{ name }}{% endfor %}")
    assert render(v, {"name": "x"}).text == "xx"
    with pytest.raises(PromptRenderError, match="variable `name` is required"):
        render(v, {})
    with pytest.raises(PromptRenderError, match="unknown variable `other`"):
        render(v, {"name": "x", "other": 1})


def test_an_undefined_attribute_is_an_error_never_an_empty_string() -> None:
    v = version(text="{{ user.nmae }}", variables={"user": VariableSpec("object", required=True)})
    with pytest.raises(PromptRenderError, match="nmae"):
        render(v, {"user": {"name": "a"}})


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ x.__class__ }}",
        "{{ x|attr('__class__') }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ lipsum.__globals__ }}",
        "{{ self.__init__.__globals__ }}",
        "{% for c in ().__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
        "{{ x.__class__.mro() }}",
        "{{ [].append(1) }}",
        "{{ {}.update(a=1) }}",
        "{{ x.format.__globals__ }}",
    ],
)
def test_sandbox_escapes_are_refused(template: str) -> None:
    v = version(text=template, variables={"x": VariableSpec("string", default="s")})
    with pytest.raises(PromptRenderError) as caught:
        render(v, {})
    assert caught.value.status == 400


def test_sandbox_refusal_says_so() -> None:
    v = version(text="{{ ''.__class__ }}")
    with pytest.raises(PromptRenderError, match="refused by the sandbox"):
        render(v, {})


def test_errors_inside_the_template_are_render_errors() -> None:
    with pytest.raises(PromptRenderError, match="ZeroDivisionError"):
        render(version(text="{{ 1 / 0 }}"), {})
    with pytest.raises(PromptRenderError, match="range"):
        render(version(text="{{ range(10**9)|list }}"), {})
    with pytest.raises(PromptRenderError, match="syntax error on line 2"):
        render(version(text="ok\n{% if %}"), {})


def test_compiled_templates_are_cached_per_version() -> None:
    renderer = PromptRenderer()
    first = renderer._compile(REFUND)
    assert renderer._compile(REFUND) is first
    assert renderer._compile(version(text="{{ a }}", number=2)) is not first
    assert renderer.render(REFUND, {"question": "q"}).messages is not None
