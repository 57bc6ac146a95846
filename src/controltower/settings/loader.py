"""Load settings from YAML with ${ENV} interpolation; every mistake names file, field and fix."""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from controltower.errors import ConfigError
from controltower.settings.model import FieldProblem, Settings

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
Loc = tuple[str | int, ...]

_FIXES = {
    "missing": "add this field",
    "extra_forbidden": "remove it, or check its spelling",
    "greater_than": "use a larger number",
    "greater_than_equal": "use a larger number",
    "less_than_equal": "use a smaller number",
    "too_short": "give at least one entry",
    "literal_error": "use one of the values listed",
    "float_parsing": "write a number",
    "int_parsing": "write a whole number",
    "string_type": "write a string (quote it if it looks like a number)",
    "list_type": "write a YAML list (`- item` lines or `[a, b]`)",
    "dict_type": "write a YAML mapping (`key: value` lines)",
    "model_type": "write a YAML mapping (`key: value` lines)",
}


def load_settings(
    path: str | os.PathLike[str] | None,
    *,
    known_providers: Collection[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Read and validate a config file; with no file, settings built from the environment."""
    env = os.environ if environ is None else environ
    if path is None:
        return parse_settings({}, "<defaults>", known_providers=known_providers, environ=env)
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        problem = f"{p}: cannot read the config file ({exc.strerror}); check the path"
        raise ConfigError([problem]) from None
    return parse_settings(text, str(p), known_providers=known_providers, environ=env)


def parse_settings(
    source: str | Mapping[str, Any],
    filename: str,
    *,
    known_providers: Collection[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Validate YAML text or an already-parsed mapping as settings."""
    env = os.environ if environ is None else environ
    lines: dict[Loc, int] = {}
    if isinstance(source, str):
        data, lines = _parse_yaml(source, filename)
    else:
        data = dict(source)
    problems: list[str] = []
    data = _interpolate(data, (), env, filename, lines, problems)
    if not isinstance(data, dict):
        raise ConfigError([f"{filename}: the config must be a YAML mapping with a `models:` list"])
    if env.get("CONTROLTOWER_DATABASE_URL"):
        data["database_url"] = env["CONTROLTOWER_DATABASE_URL"]
    if env.get("CONTROLTOWER_MASTER_KEY"):
        data["master_key"] = env["CONTROLTOWER_MASTER_KEY"]
    if problems:
        raise ConfigError(problems)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, filename, lines)) from None
    if known_providers is not None:
        _check_providers(settings, filename, lines, known_providers)
    return settings


def read_yaml(text: str, filename: str) -> tuple[yaml.Node | None, Any]:
    """The YAML's node tree (for line numbers) and its data; ConfigError at a syntax error."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader), yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{filename}:{mark.line + 1}" if mark is not None else filename
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{where}: not valid YAML ({problem}); fix the syntax there"]) from None


def _parse_yaml(text: str, filename: str) -> tuple[Any, dict[Loc, int]]:
    node, data = read_yaml(text, filename)
    lines: dict[Loc, int] = {}
    if node is not None:
        _index_lines(node, (), lines)
    return ({} if data is None else data), lines


def _index_lines(node: yaml.Node, loc: Loc, out: dict[Loc, int]) -> None:
    out[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            _index_lines(value, (*loc, key.value), out)
            out[(*loc, key.value)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, (*loc, i), out)


def _interpolate(
    value: Any,
    loc: Loc,
    env: Mapping[str, str],
    filename: str,
    lines: dict[Loc, int],
    problems: list[str],
) -> Any:
    if isinstance(value, dict):
        return {
            k: _interpolate(v, (*loc, k), env, filename, lines, problems) for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            _interpolate(v, (*loc, i), env, filename, lines, problems) for i, v in enumerate(value)
        ]
    if not isinstance(value, str) or "${" not in value:
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        problems.append(
            f"{_where(filename, lines, loc)}: environment variable {name} is not set; "
            f"export {name}=... before starting, or write ${{{name}:-default}}"
        )
        return ""

    return _ENV_REF.sub(substitute, value)


def _where(filename: str, lines: dict[Loc, int], loc: Loc) -> str:
    probe = loc
    while probe and probe not in lines:
        probe = probe[:-1]
    line = lines.get(probe)
    path = _dotted(loc) or "(top level)"
    return f"{filename}:{line} {path}" if line else f"{filename}: {path}"


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe(exc: ValidationError, filename: str, lines: dict[Loc, int]) -> list[str]:
    problems = []
    for err in exc.errors(include_url=False):
        loc: Loc = tuple(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        problem = (err.get("ctx") or {}).get("error")
        if isinstance(problem, FieldProblem):
            where = _where(filename, lines, (*loc, *problem.loc))
            problems.append(f"{where}: {problem}; fix: {problem.fix}")
            continue
        fix = _FIXES.get(err["type"], "see docs/configuration.md")
        got = "" if err["type"] == "missing" else f" (got {err.get('input')!r})"
        if err["type"] == "extra_forbidden":
            got = ""
        problems.append(f"{_where(filename, lines, loc)}: {msg}{got}; fix: {fix}")
    return problems


def _check_providers(
    settings: Settings, filename: str, lines: dict[Loc, int], known: Collection[str]
) -> None:
    problems = []
    for i, alias in enumerate(settings.models):
        for j, dep in enumerate(alias.deployments):
            loc: Loc = ("models", i, "deployments", j, "provider")
            if dep.provider not in known:
                problems.append(
                    f"{_where(filename, lines, loc)}: unknown provider {dep.provider!r}; "
                    f"fix: use one of {sorted(known)}"
                )
    if problems:
        raise ConfigError(problems)
