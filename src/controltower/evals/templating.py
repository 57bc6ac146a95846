"""Templates in eval files (`contains: "{{ expected }}"`), rendered per sample in the sandbox.

They see the item (`input`, `expected`, `metadata`, its `variables` by name and as
`vars`), the answer (`output`) and the repeat index. Each is compiled once, when the
eval file loads, so a syntax error is reported with the file's line before any call.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from jinja2 import TemplateSyntaxError

from controltower.evals.scoring import Sample
from controltower.prompts.errors import PromptRenderError
from controltower.prompts.render import template_environment
from controltower.prompts.sandbox import RenderBudget, RenderLimits

SampleTemplate = Callable[[Sample], str]

_LIMITS = RenderLimits(time_s=1.0, max_output_chars=1_000_000)
# `{{ expected }}`, the commonest template: read without the sandbox when it names a text
_ONE_NAME = re.compile(r"\{\{-?\s*([A-Za-z_][A-Za-z0-9_]*)\s*-?\}\}")


class TemplateProblem(ValueError):
    """A template in an eval file that does not compile."""


def sample_values(sample: Sample) -> dict[str, Any]:
    """The names a template may read for one sample."""
    item = sample.item
    return {
        **item.variables,
        "vars": item.variables,
        "input": item.input,
        "expected": item.expected,
        "metadata": item.metadata,
        "id": item.id,
        "output": sample.text,
        "repeat": sample.repeat,
    }


class SampleTemplates:
    """Compiles the templates of one eval file in one sandbox."""

    def __init__(self) -> None:
        self._env = template_environment()

    def compile(self, source: str) -> SampleTemplate:
        """A function rendering `source` for a sample; `TemplateProblem` if it does not compile.

        A source without `{{` or `{%` is returned as is, without the sandbox's cost.
        """
        if "{{" not in source and "{%" not in source and "{#" not in source:
            return lambda _sample: source
        try:
            template = self._env.compile_template(source)
        except TemplateSyntaxError as exc:
            raise TemplateProblem(f"template error: {exc.message}") from None
        env = self._env
        one = _ONE_NAME.fullmatch(source)
        name = one.group(1) if one else None

        def render(sample: Sample) -> str:
            if name is not None:
                value = sample_values(sample).get(name)
                if isinstance(value, str):  # what the sandbox renders it as, unchanged
                    return value
            budget = RenderBudget(_LIMITS)
            budget.start()
            with env.spending(budget):
                try:
                    return template.render(sample_values(sample))
                except PromptRenderError:
                    raise
                except Exception as exc:  # undefined names, a failed operation
                    raise PromptRenderError(f"template failed: {exc}") from None

        return render
