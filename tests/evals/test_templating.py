"""Eval-file templates: the one-name shortcut renders exactly what the sandbox renders."""

from __future__ import annotations

import pytest

from controltower.domain.dataset import DatasetItem
from controltower.evals.scoring import Sample
from controltower.evals.templating import SampleTemplates
from controltower.prompts.errors import PromptRenderError


def _sample(**item: object) -> Sample:
    return Sample(DatasetItem("q1", **item), "the answer", "the answer")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("source", "item", "want"),
    [
        ("{{ expected }}", {"expected": "30 days"}, "30 days"),
        ("{{expected}}", {"expected": "30 days"}, "30 days"),
        ("{{- expected -}}", {"expected": " 30 days "}, " 30 days "),
        ("{{ expected }}", {"expected": 30}, "30"),  # not a text: the sandbox renders it
        ("{{ expected }}", {"expected": ["a", "b"]}, "['a', 'b']"),
        ("{{ city }}", {"variables": {"city": "Lyon"}}, "Lyon"),
        ("{{ output }}", {}, "the answer"),
        ("{{ id }}", {}, "q1"),
        (" {{ expected }}", {"expected": "x"}, " x"),
        ("{{ expected | upper }}", {"expected": "x"}, "X"),
    ],
)
def test_a_template_renders_as_the_sandbox_does(source: str, item: dict, want: str) -> None:
    assert SampleTemplates().compile(source)(_sample(**item)) == want


def test_an_unknown_name_is_still_a_render_error() -> None:
    render = SampleTemplates().compile("{{ nothing }}")
    with pytest.raises(PromptRenderError):
        render(_sample())
