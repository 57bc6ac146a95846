"""Eval files: YAML kept in Git, checked whole, every problem as `FILE:LINE field: problem; fix`.

```yaml
name: refund-policy
dataset: datasets/refund.jsonl        # a file beside this one, or a stored dataset refund@golden-v3
target: {prompt: refund-policy@production}
matrix: {model: [fast, gpt-next]}
scorers:
  - contains: "{{ expected }}"
  - judge: {rubric: "Is the answer polite and correct?", model: judge, scale: 1-5}
repeats: 3
concurrency: 32
thresholds: {contains: 0.9, judge: 4.0}
```

The same shape loads from a Python mapping (`parse_eval(mapping, "<name>")`).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from controltower.errors import ConfigError
from controltower.evals.registry import ScorerRegistry
from controltower.evals.scoring import Scorer, ScorerConfigError, ScorerContext
from controltower.evals.spec_problems import EvalFileError, Loc, Problems, unknown
from controltower.evals.spec_targets import TargetSpec, parse_target
from controltower.evals.templating import SampleTemplates, TemplateProblem
from controltower.settings.loader import parse_yaml

__all__ = ["EvalFileError", "EvalSpec", "ScorerSpec", "TargetSpec", "load_eval_file", "parse_eval"]

CachePolicy = Literal["on", "off", "read-only"]
TOP_KEYS = (
    "name",
    "description",
    "dataset",
    "target",
    "matrix",
    "scorers",
    "repeats",
    "concurrency",
    "thresholds",
    "timeout",
    "max_error_rate",
    "cache",
)
MATRIX_KEYS = ("model", "prompt")  # and `params.NAME`
MAX_REPEATS = 100
MAX_CONCURRENCY = 1024
MAX_RUNS = 64  # combinations of one matrix


@dataclass(frozen=True, slots=True)
class ScorerSpec:
    """One entry of `scorers:`: its type, settings and name, and the line it is on."""

    type: str
    config: Any
    name: str
    line: int
    negate: bool = False

    def describe(self) -> dict[str, Any]:
        """The scorer's settings as the run's record keeps them."""
        out = {"type": self.type, "name": self.name, "config": self.config}
        return {**out, "negate": True} if self.negate else out


@dataclass(frozen=True, slots=True)
class EvalSpec:
    """A checked eval file."""

    name: str
    dataset: str | list[Any]
    target: TargetSpec
    scorers: tuple[ScorerSpec, ...]
    source: str = "<python>"
    base_dir: Path = field(default_factory=Path.cwd)
    description: str | None = None
    matrix: dict[str, list[Any]] = field(default_factory=dict)
    repeats: int = 1
    concurrency: int = 8
    thresholds: dict[str, float] = field(default_factory=dict)
    timeout_s: float = 60.0
    max_error_rate: float = 0.1
    cache: CachePolicy = "on"
    lines: dict[Loc, int] = field(default_factory=dict)

    def line_of(self, *loc: str | int) -> int:
        """The line of a field (of its nearest parent that has one; 0 if none)."""
        probe: Loc = loc
        while probe and probe not in self.lines:
            probe = probe[:-1]
        return self.lines.get(probe, 0)

    def combinations(self) -> list[dict[str, Any]]:
        """Each run of the matrix as its values ([{}] without a matrix)."""
        keys = list(self.matrix)
        return [
            dict(zip(keys, values, strict=True))
            for values in itertools.product(*(self.matrix[k] for k in keys))
        ]

    def target_for(self, values: Mapping[str, Any]) -> TargetSpec:
        """The target with one combination of the matrix applied."""
        t = self.target
        params = dict(t.params)
        for key, value in values.items():
            if key.startswith("params."):
                params[key.removeprefix("params.")] = value
        return TargetSpec(
            t.kind,
            values.get("prompt", t.prompt),
            values.get("model", t.model),
            t.messages,
            params,
            t.python,
            t.http,
            t.function,
        )

    def build_scorers(self, ctx: ScorerContext, registry: ScorerRegistry) -> list[Scorer]:
        """The scorers, built with a context (a model client for judges)."""
        return [
            registry.build(s.type, s.config, ctx, name=s.name, negate=s.negate)
            for s in self.scorers
        ]


def load_eval_file(path: str | Path, registry: ScorerRegistry | None = None) -> EvalSpec:
    """Read and check an eval file; EvalFileError with every problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalFileError([f"{p}: cannot read the eval file ({exc}); check the path"]) from None
    try:
        data, lines = parse_yaml(text, str(p))
    except ConfigError as exc:
        raise EvalFileError(exc.problems) from None
    return parse_eval(
        data, str(p), lines=lines, base_dir=p.parent, registry=registry, default_name=p.stem
    )


def parse_eval(
    data: Any,
    source: str = "<python>",
    *,
    lines: dict[Loc, int] | None = None,
    base_dir: Path | None = None,
    registry: ScorerRegistry | None = None,
    default_name: str | None = None,
) -> EvalSpec:
    """Check an eval's data (a parsed YAML mapping); EvalFileError with every problem."""
    found = Problems(source, lines or {})
    if not isinstance(data, dict):
        found.add(
            (), "the eval file must be a YAML mapping; fix: start with `name:` and `dataset:` lines"
        )
        found.raise_any()
    _check_keys(data, found)
    name = _name(data, found, default_name)
    target = parse_target(data.get("target"), found)
    scorers = _scorers(data.get("scorers"), found, registry or ScorerRegistry.default())
    spec = EvalSpec(
        name=name,
        dataset=_dataset(data.get("dataset"), found),
        target=target,
        scorers=tuple(scorers),
        source=source,
        base_dir=base_dir or Path.cwd(),
        description=_text(data, "description", found, required=False),
        matrix=_matrix(data.get("matrix"), target, found),
        repeats=_whole(data, "repeats", 1, 1, MAX_REPEATS, found),
        concurrency=_whole(data, "concurrency", 8, 1, MAX_CONCURRENCY, found),
        thresholds=_thresholds(data.get("thresholds"), scorers, found),
        timeout_s=_number(data, "timeout", 60.0, 0.001, 3600, found),
        max_error_rate=_number(data, "max_error_rate", 0.1, 0.0, 1.0, found),
        cache=_cache(data.get("cache", "on"), found),
        lines=dict(lines or {}),
    )
    found.raise_any()
    return spec


def _check_keys(data: dict[str, Any], found: Problems) -> None:
    for key in data:
        if key not in TOP_KEYS:
            found.add((str(key),), unknown(str(key), TOP_KEYS))
    for key in ("dataset", "target", "scorers"):
        if key not in data:
            found.add((), f"`{key}` is required; fix: add a `{key}:` field (see docs/evals.md)")


def _text(data: dict[str, Any], key: str, found: Problems, *, required: bool) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        found.add((key,), f"must be a non-empty string (got {value!r}); fix: write text")
        return None
    return value


def _name(data: dict[str, Any], found: Problems, default: str | None) -> str:
    name = _text(data, "name", found, required=False) or default
    if name is None:
        found.add(("name",), "is required here; fix: add `name: my-eval`")
        return "eval"
    if len(name) > 200:
        found.add(("name",), "is longer than 200 characters; fix: shorten it")
    return name


def _dataset(value: Any, found: Problems) -> str | list[Any]:
    if isinstance(value, list):
        if not value:
            found.add(("dataset",), "is an empty list; fix: give at least one item")
        return value
    if value is None:
        return ""
    if not isinstance(value, str) or not value.strip():
        found.add(
            ("dataset",),
            "must be a file path, a stored dataset (`name@tag`, "
            "`name#3`) or a list of items; fix: e.g. `dataset: datasets/refund.jsonl`",
        )
        return ""
    return value


def _scorers(value: Any, found: Problems, registry: ScorerRegistry) -> list[ScorerSpec]:
    loc: Loc = ("scorers",)
    if value is None:
        return []
    if not isinstance(value, list) or not value:
        found.add(
            loc,
            "must be a non-empty list of scorers; fix: e.g. `scorers: "
            '[{contains: "{{ expected }}"}]`',
        )
        return []
    out: list[ScorerSpec] = []
    names: set[str] = set()
    ctx = ScorerContext(None, SampleTemplates())
    for i, entry in enumerate(value):
        spec = _scorer(entry, (*loc, i), found, registry, ctx)
        if spec is None:
            continue
        name = spec.name
        if name in names and not isinstance(entry.get("name"), str):
            name = next(
                f"{spec.name}-{n}" for n in itertools.count(2) if f"{spec.name}-{n}" not in names
            )
        elif name in names:
            found.add(
                (*loc, i, "name"), f"{name!r} names two scorers; fix: give each its own `name`"
            )
        names.add(name)
        out.append(ScorerSpec(spec.type, spec.config, name, spec.line, spec.negate))
    return out


def _scorer(
    entry: Any, loc: Loc, found: Problems, registry: ScorerRegistry, ctx: ScorerContext
) -> ScorerSpec | None:
    if not isinstance(entry, dict):
        found.add(loc, "must be a mapping like `contains: text`; fix: write `- TYPE: settings`")
        return None
    name = entry.get("name")
    kinds = [k for k in entry if k != "name"]
    if name is not None and (not isinstance(name, str) or not name.strip()):
        found.add((*loc, "name"), "must be a non-empty string; fix: write a name")
        name = None
    if len(kinds) != 1:
        found.add(
            loc,
            f"names {len(kinds)} scorer types ({', '.join(map(str, kinds))}); fix: "
            "one type per entry, plus an optional `name`",
        )
        return None
    kind = str(kinds[0])
    negate = kind == "not"
    config = entry[kind]
    inner_loc: Loc = (*loc, kind)
    if negate:
        if not isinstance(config, dict) or len(config) != 1:
            found.add(
                inner_loc,
                "must hold one scorer, e.g. `not: {contains: sorry}`; fix: "
                "put one `TYPE: settings` under it",
            )
            return None
        kind, config = next(iter(config.items()))
        inner_loc = (*inner_loc, kind)
    if not _check_scorer(kind, config, inner_loc, found, registry, ctx):
        return None
    default = f"not-{kind}" if negate else kind
    return ScorerSpec(kind, config, name or default, _line(found, loc), negate)


def _check_scorer(
    kind: str,
    config: Any,
    loc: Loc,
    found: Problems,
    registry: ScorerRegistry,
    ctx: ScorerContext,
) -> bool:
    if kind not in registry.names():
        found.add(
            (*loc[:-1], kind),
            unknown(kind, tuple(registry.names()), "unknown scorer type"),
        )
        return False
    try:
        registry.build(kind, config, ctx, name=kind)
    except ScorerConfigError as exc:
        for path, message in exc.problems:
            found.add((*loc, *path), message)
        return False
    except TemplateProblem as exc:
        found.add(loc, f"{exc}; fix: correct the template")
        return False
    return True


def _line(found: Problems, loc: Loc) -> int:
    return found.lines.get(loc, 0)


def _matrix(value: Any, target: TargetSpec, found: Problems) -> dict[str, list[Any]]:
    loc: Loc = ("matrix",)
    if value is None:
        return {}
    if not isinstance(value, dict) or not value:
        found.add(loc, "must map a field to its values; fix: e.g. `matrix: {model: [a, b]}`")
        return {}
    out: dict[str, list[Any]] = {}
    for key, values in value.items():
        key = str(key)
        if key not in MATRIX_KEYS and not key.startswith("params."):
            found.add((*loc, key), "can vary model, prompt or params.NAME; fix: use one of them")
            continue
        if key == "prompt" and target.kind != "prompt":
            found.add(
                (*loc, key),
                "varies the prompt of a prompt target; fix: use `target: {prompt: ...}`",
            )
        if not isinstance(values, list) or not values:
            found.add((*loc, key), "must be a non-empty list of values; fix: write `[a, b]`")
            continue
        out[key] = values
    runs = 1
    for values in out.values():
        runs *= len(values)
    if runs > MAX_RUNS:
        found.add(loc, f"makes {runs} runs; fix: at most {MAX_RUNS} combinations")
    return out


def _whole(
    data: dict[str, Any], key: str, default: int, low: int, high: int, found: Problems
) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        found.add(
            (key,), f"must be a whole number from {low} to {high} (got {value!r}); fix: write one"
        )
        return default
    return value


def _number(
    data: dict[str, Any], key: str, default: float, low: float, high: float, found: Problems
) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        found.add(
            (key,), f"must be a number from {low:g} to {high:g} (got {value!r}); fix: write one"
        )
        return default
    return float(value)


def _thresholds(value: Any, scorers: list[ScorerSpec], found: Problems) -> dict[str, float]:
    loc: Loc = ("thresholds",)
    if value is None:
        return {}
    if not isinstance(value, dict):
        found.add(loc, "must map scorer names to numbers; fix: e.g. `thresholds: {contains: 0.9}`")
        return {}
    names = tuple(s.name for s in scorers)
    out: dict[str, float] = {}
    for key, number in value.items():
        key = str(key)
        if names and key not in names:
            found.add((*loc, key), unknown(key, names, "names no scorer"))
        elif isinstance(number, bool) or not isinstance(number, int | float):
            found.add(
                (*loc, key),
                f"must be a number (got {number!r}); fix: write the "
                "lowest mean score (a pass rate for pass/fail scorers) that passes",
            )
        else:
            out[key] = float(number)
    return out


def _cache(value: Any, found: Problems) -> CachePolicy:
    if value is True or value == "on":
        return "on"
    if value is False or value == "off":
        return "off"
    if value == "read-only":
        return "read-only"
    found.add(("cache",), f"must be on, off or read-only (got {value!r}); fix: use one")
    return "on"
