"""Load settings from YAML with ${ENV} interpolation; every mistake names file, field and fix.

A check finds every problem of a file in one pass and says each in plain words, sorted by
line. No problem shows the value of a secret field.
"""

from __future__ import annotations

import difflib
import os
import re
import types
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, NamedTuple, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_core import ErrorDetails

from controltower.errors import ConfigError
from controltower.settings.model import (
    DATABASE_URL_ENV,
    MASTER_KEY_ENV,
    FieldProblem,
    FieldProblems,
    Settings,
    reference_problems,
)

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_URL_PASSWORD = re.compile(r"(://[^/:@]*:)[^/@]*@")
Loc = tuple[str | int, ...]
SECRET = "***"

# pydantic's error types, in plain words: what is wrong, and the fix
_PLAIN = {
    "missing": ("is required", "add this field"),
    "greater_than": ("must be greater than {gt}", "use a larger number"),
    "greater_than_equal": ("must be at least {ge}", "use a larger number"),
    "less_than": ("must be less than {lt}", "use a smaller number"),
    "less_than_equal": ("must be at most {le}", "use a smaller number"),
    "too_short": ("needs at least {min_length} entry", "give at least one entry"),
    "string_too_short": ("must not be empty", "write a value"),
    "literal_error": ("must be one of {expected}", "use one of the values listed"),
    "finite_number": ("must be a finite number", "write a number"),
}
# pydantic's type errors, as what the value must be
_KINDS = {
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}
_KIND_FIXES = {
    "text": "write a string (quote it if it looks like a number)",
    "a whole number": "write a whole number",
    "a number": "write a number",
    "true or false": "write true or false",
    "a list": "write a YAML list (`- item` lines or `[a, b]`)",
    "a mapping": "write a YAML mapping (`key: value` lines)",
}


@dataclass(frozen=True)
class ConfigReport:
    """What checking a config found: the settings (None when invalid), problems, warnings."""

    settings: Settings | None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def load_settings(
    path: str | os.PathLike[str] | None,
    *,
    known_providers: Collection[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Read and validate a config file; with no file, settings built from the environment."""
    return _settings_of(check_config(path, known_providers=known_providers, environ=environ))


def parse_settings(
    source: str | Mapping[str, Any],
    filename: str,
    *,
    known_providers: Collection[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Validate YAML text or an already-parsed mapping as settings."""
    report = check_settings(source, filename, known_providers=known_providers, environ=environ)
    return _settings_of(report)


def check_config(
    path: str | os.PathLike[str] | None,
    *,
    known_providers: Collection[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ConfigReport:
    """Every problem and warning of a config file (or, with none, of the environment)."""
    if path is None:
        return check_settings({}, "<defaults>", known_providers=known_providers, environ=environ)
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        problem = f"{p}: cannot read the config file ({exc.strerror}); check the path"
        return ConfigReport(None, [problem])
    return check_settings(text, str(p), known_providers=known_providers, environ=environ)


def check_settings(
    source: str | Mapping[str, Any],
    filename: str,
    *,
    known_providers: Collection[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ConfigReport:
    """Every problem and warning of YAML text or an already-parsed mapping."""
    env = os.environ if environ is None else environ
    if isinstance(source, str):
        try:
            data, lines = parse_yaml(source, filename)
        except ConfigError as exc:
            return ConfigReport(None, exc.problems)
    else:
        data, lines = dict(source), {}
    found = _Findings(filename, lines)
    if data is None:
        found.add(None, "file is empty: the gateway will run with defaults", warning=True)
        data = {}
    data = _interpolate(data, (), env, found)
    if not isinstance(data, dict):
        found.add(None, "the config must be a YAML mapping with a `models:` list")
        return found.report(None)
    _apply_environment(data, env, found)
    _warn_empty_master_key(data, found)
    settings = _validate(data, found)
    if known_providers is not None:
        _check_providers(data, found, known_providers)
    return found.report(settings)


def read_yaml(text: str, filename: str) -> tuple[yaml.Node | None, Any]:
    """The YAML's node tree (for line numbers) and its data; ConfigError at a syntax error."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader), yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{filename}:{mark.line + 1}" if mark is not None else filename
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{where}: not valid YAML ({problem}); fix the syntax there"]) from None


def mask_url(url: str) -> str:
    """A database URL with its password shown as ***."""
    return _URL_PASSWORD.sub(rf"\g<1>{SECRET}@", url)


def _settings_of(report: ConfigReport) -> Settings:
    if report.settings is None:
        raise ConfigError(report.problems)
    return report.settings


class _Finding(NamedTuple):
    line: int  # 0: about the whole file
    loc: Loc | None
    text: str


class _Findings:
    """Problems and warnings as they are found, each placed at its line of the file."""

    def __init__(self, filename: str, lines: dict[Loc, int]) -> None:
        self.filename = filename
        self.lines = lines
        self.problems: list[_Finding] = []
        self.warnings: list[_Finding] = []

    def add(self, loc: Loc | None, text: str, *, warning: bool = False) -> None:
        line, where = (0, self.filename) if loc is None else self._where(loc)
        finding = _Finding(line, loc, f"{where}: {text}")
        (self.warnings if warning else self.problems).append(finding)

    def has_problem_at(self, loc: Loc) -> bool:
        return any(p.loc == loc for p in self.problems)

    def report(self, settings: Settings | None) -> ConfigReport:
        problems = [p.text for p in sorted(self.problems, key=lambda p: p.line)]
        warnings = [w.text for w in sorted(self.warnings, key=lambda w: w.line)]
        return ConfigReport(None if problems else settings, problems, warnings)

    def _where(self, loc: Loc) -> tuple[int, str]:
        probe = loc
        while probe and probe not in self.lines:
            probe = probe[:-1]
        line = self.lines.get(probe, 0)
        path = _dotted(loc) or "(top level)"
        return line, f"{self.filename}:{line} {path}" if line else f"{self.filename}: {path}"


def parse_yaml(text: str, filename: str) -> tuple[Any, dict[Loc, int]]:
    """The YAML's data, and the line of each key and item (by its path); ConfigError at a
    syntax error."""
    node, data = read_yaml(text, filename)
    lines: dict[Loc, int] = {}
    if node is not None:
        _index_lines(node, (), lines)
    return data, lines


def _index_lines(node: yaml.Node, loc: Loc, out: dict[Loc, int]) -> None:
    out[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            _index_lines(value, (*loc, key.value), out)
            out[(*loc, key.value)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, (*loc, i), out)


def _interpolate(value: Any, loc: Loc, env: Mapping[str, str], found: _Findings) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, (*loc, k), env, found) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*loc, i), env, found) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        found.add(
            loc,
            f"environment variable {name} is not set; "
            f"export {name}=... before starting, or write ${{{name}:-default}}",
        )
        return ""

    return _ENV_REF.sub(substitute, value)


def _apply_environment(data: dict[str, Any], env: Mapping[str, str], found: _Findings) -> None:
    if env.get(DATABASE_URL_ENV):
        data["database_url"] = env[DATABASE_URL_ENV]
    key = env.get(MASTER_KEY_ENV)
    if key is not None and key.strip():
        data["master_key"] = key
    elif key is not None:
        found.add(
            None,
            f"environment variable {MASTER_KEY_ENV} is set but empty, so it gives no "
            "master key; fix: set it to a key, or unset it",
            warning=True,
        )


def _warn_empty_master_key(data: dict[str, Any], found: _Findings) -> None:
    if "master_key" not in data or found.has_problem_at(("master_key",)):
        return
    key = data["master_key"]
    if key is not None and (not isinstance(key, str) or key.strip()):
        return
    found.add(
        ("master_key",),
        "is empty, which counts as no master key: requests need no key, and the gateway "
        f"refuses to listen beyond loopback; fix: set a key (e.g. ${{{MASTER_KEY_ENV}}}), "
        "or remove the line",
        warning=True,
    )


def _validate(data: dict[str, Any], found: _Findings) -> Settings | None:
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    cross_field = [_problems_in(err) for err in errors]
    for problems in cross_field:
        for problem in problems or ():
            found.add(problem.loc, f"{problem}; fix: {problem.fix}")
    if any(problems is None for problems in cross_field):
        # a field was invalid, so the model's own cross-field checks did not run
        _check_references(data, found)
    for loc, text in _describe([e for e, p in zip(errors, cross_field, strict=True) if p is None]):
        found.add(loc, text)
    return None


def _problems_in(err: ErrorDetails) -> list[FieldProblem] | None:
    """The cross-field problems a pydantic error carries; None for a field's own error."""
    error = (err.get("ctx") or {}).get("error")
    if isinstance(error, FieldProblems):
        return [_at(problem, tuple(err["loc"])) for problem in error.problems]
    if isinstance(error, FieldProblem):
        return [_at(error, tuple(err["loc"]))]
    return None


def _at(problem: FieldProblem, loc: Loc) -> FieldProblem:
    return FieldProblem((*loc, *problem.loc), str(problem), problem.fix)


def _check_references(data: dict[str, Any], found: _Findings) -> None:
    aliases = [a if isinstance(a, dict) else {} for a in _items(data.get("models"))]
    fallbacks = [a.get("fallbacks") for a in aliases]
    for problem in reference_problems(
        [a.get("name") for a in aliases], [f if isinstance(f, list) else [] for f in fallbacks]
    ):
        found.add(problem.loc, f"{problem}; fix: {problem.fix}")


def _check_providers(data: dict[str, Any], found: _Findings, known: Collection[str]) -> None:
    for i, alias in enumerate(_items(data.get("models"))):
        deployments = alias.get("deployments") if isinstance(alias, dict) else None
        for j, deployment in enumerate(_items(deployments)):
            provider = deployment.get("provider") if isinstance(deployment, dict) else None
            if not isinstance(provider, str) or provider in known:
                continue
            close = difflib.get_close_matches(provider, known, n=1)
            hint = f"did you mean `{close[0]}`? " if close else ""
            found.add(
                ("models", i, "deployments", j, "provider"),
                f"unknown provider {provider!r}; fix: {hint}use one of {sorted(known)}",
            )


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


# --- pydantic's errors in plain words ----------------------------------------------------------


def _describe(errors: list[ErrorDetails]) -> Iterator[tuple[Loc, str]]:
    """(where, what is wrong and the fix) for each field error, union branches merged."""
    plain: dict[Loc, list[tuple[ErrorDetails, Loc, bool]]] = {}
    for err in errors:
        loc, union_at = _without_branches(tuple(err["loc"]))
        base = loc if union_at is None else loc[:union_at]
        plain.setdefault(base, []).append((err, loc, union_at is not None))
    for base, group in plain.items():
        if not group[0][2]:
            yield from ((loc, _sentence(err, loc)) for err, loc, _ in group)
            continue
        inner = [(err, loc) for err, loc, _ in group if loc != base]
        if inner:  # the value matched a branch's type: its own mistakes are the ones to fix
            yield from ((loc, _sentence(err, loc)) for err, loc in inner)
        else:
            kinds = sorted({_KINDS.get(err["type"], "something else") for err, _, _ in group})
            got = _shown(group[0][0].get("input"), _is_secret(base))
            yield base, f"must be {' or '.join(kinds)} (got {got}); fix: see docs/configuration.md"


def _sentence(err: ErrorDetails, loc: Loc) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"unknown field; fix: {_spelling_fix(loc)}"
    if kind in _KINDS:
        what, fix = f"must be {_KINDS[kind]}", _KIND_FIXES[_KINDS[kind]]
    elif kind in _PLAIN:
        what, fix = _PLAIN[kind]
        try:
            what = what.format(**{k: _number(v) for k, v in (err.get("ctx") or {}).items()})
        except (KeyError, IndexError):
            what = err["msg"]
    else:
        what, fix = err["msg"].removeprefix("Value error, "), "see docs/configuration.md"
    got = "" if kind == "missing" else f" (got {_shown(err.get('input'), _is_secret(loc))})"
    return f"{what}{got}; fix: {fix}"


def _number(value: Any) -> Any:
    # pydantic states float bounds as 0.0: say 0
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _spelling_fix(loc: Loc) -> str:
    known = _known_fields(loc[:-1])
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    if close:
        return f"did you mean `{close[0]}`?"
    listed = f" (the fields here: {', '.join(known)})" if known else ""
    return f"remove it, or check its spelling{listed}"


def _shown(value: Any, secret: bool) -> str:
    if secret:
        return SECRET
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        value = mask_url(value)
        return repr(value if len(value) <= 60 else value[:57] + "...")
    return repr(value)


def _is_secret(loc: Loc) -> bool:
    # header values often carry credentials (Authorization, api-key), so none is shown
    return "headers" in loc or SecretStr in _options(_annotation_at(loc))


def _known_fields(loc: Loc) -> list[str]:
    names: list[str] = []
    for option in _options(_annotation_at(loc)):
        if _is_model(option):
            names.extend(option.model_fields)
    return names


def _without_branches(loc: Loc) -> tuple[Loc, int | None]:
    """The loc without the names pydantic gives union branches, and where one was dropped."""
    out: list[str | int] = []
    union_at: int | None = None
    annotation: Any = Settings
    for part in loc:
        options = _options(annotation)
        branch = next((o for o in options if len(options) > 1 and _name(o) == part), None)
        if branch is not None:
            union_at, annotation = len(out), branch
            continue
        out.append(part)
        annotation = _child(annotation, part)
    return tuple(out), union_at


def _annotation_at(loc: Loc) -> Any:
    annotation: Any = Settings
    for part in loc:
        annotation = _child(annotation, part)
    return annotation


def _child(annotation: Any, part: str | int) -> Any:
    for option in _options(annotation):
        if _is_model(option) and isinstance(part, str) and part in option.model_fields:
            return option.model_fields[part].annotation
        origin, args = get_origin(option), get_args(option)
        if origin is list and isinstance(part, int):
            return args[0]
        if origin is dict and isinstance(part, str):
            return args[1]
    return None


def _options(annotation: Any) -> tuple[Any, ...]:
    """The types a value may have: unions and Optional unpacked, Annotated unwrapped."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _options(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return tuple(o for arg in get_args(annotation) for o in _options(arg))
    return () if annotation is None or annotation is type(None) else (annotation,)


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _name(annotation: Any) -> str:
    return str(getattr(annotation, "__name__", annotation))


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
