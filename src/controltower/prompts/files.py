"""Prompt files: one YAML file per prompt, parsed with FILE:LINE errors, and written back."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from jinja2 import TemplateSyntaxError

from controltower.domain.prompt import PromptContent, PromptVersion, VariableSpec
from controltower.errors import ConfigError
from controltower.prompts.content import PROMPT_NAME, VARIABLE_TYPES, content_to_dict
from controltower.prompts.errors import PromptRenderError
from controltower.prompts.render import check_value, referenced_variables, template_environment
from controltower.settings.loader import read_yaml

SUFFIXES = (".yaml", ".yml")
TOP_KEYS = ("name", "model", "params", "variables", "messages", "text")
VARIABLE_KEYS = ("type", "required", "enum", "default", "description")
MESSAGE_KEYS = ("role", "content", "name")
ROLES = ("system", "developer", "user", "assistant")
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class PromptFile:
    """A parsed prompt file: its prompt's name and content, and the text as written."""

    path: Path
    name: str
    content: PromptContent
    source: str


def prompt_name_for(path: Path, root: Path) -> str:
    """The prompt name a file's place implies: its path under root without the suffix."""
    return path.relative_to(root).with_suffix("").as_posix()


def read_prompt_file(path: Path, root: Path) -> PromptFile:
    """Read and parse one file under root; ConfigError naming FILE:LINE, field and fix."""
    try:
        # bytes, not read_text: newline translation would break a byte-for-byte pull
        source = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read the prompt file ({exc}); fix: check it"]) from None
    name, content = parse_prompt(source, str(path), expected_name=prompt_name_for(path, root))
    return PromptFile(path, name, content, source)


def parse_prompt(
    text: str, filename: str, *, expected_name: str | None = None
) -> tuple[str, PromptContent]:
    """A prompt's name and content from YAML text; every problem found, as ConfigError."""
    node, data = read_yaml(text, filename)
    checker = _Checker(filename, node)
    result = checker.prompt(data, expected_name)
    if checker.problems or result is None:
        raise ConfigError(checker.problems)
    return result


class _Checker:
    """Walks the parsed data, collecting every problem with its line."""

    def __init__(self, filename: str, node: yaml.Node | None) -> None:
        self.filename = filename
        self.lines: dict[Loc, int] = {}
        self.bodies: dict[Loc, int] = {}  # the line a scalar's text starts on
        self.problems: list[str] = []
        if node is not None:
            self._index(node, ())

    def _index(self, node: yaml.Node, loc: Loc) -> None:
        self.lines[loc] = node.start_mark.line + 1
        if isinstance(node, yaml.ScalarNode):
            block = node.style in ("|", ">")
            self.bodies[loc] = node.start_mark.line + (2 if block else 1)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                self._index(value, (*loc, key.value))
                self.lines[(*loc, key.value)] = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._index(item, (*loc, i))

    def add(self, loc: Loc, problem: str, fix: str, line: int | None = None) -> None:
        probe = loc
        while probe and probe not in self.lines:
            probe = probe[:-1]
        line = line or self.lines.get(probe)
        path = _dotted(loc) or "(top level)"
        where = f"{self.filename}:{line} {path}" if line else f"{self.filename}: {path}"
        self.problems.append(f"{where}: {problem}; fix: {fix}")

    def prompt(self, data: Any, expected: str | None) -> tuple[str, PromptContent] | None:
        if not isinstance(data, dict):
            self.add((), "a prompt file must be a YAML mapping", "start with `name: ...`")
            return None
        self._unknown_keys(data, (), TOP_KEYS)
        name = self._name(data, expected)
        variables = self._variables(data.get("variables"))
        messages, text = self._template(data)
        model = data.get("model")
        if model is not None and not isinstance(model, str):
            self.add(("model",), "must be a model alias (a string)", "write `model: fast`")
            model = None
        params = data.get("params") or {}
        if not isinstance(params, dict):
            self.add(("params",), "must be a mapping", "write `params: {temperature: 0.2}`")
            params = {}
        if name is None or self.problems:
            return None
        content = PromptContent(messages, text, model, params, variables)
        self._templates_compile(content)
        return name, content

    def _unknown_keys(self, data: dict[Any, Any], loc: Loc, allowed: tuple[str, ...]) -> None:
        for key in data:
            if key not in allowed:
                self.add(
                    (*loc, key),
                    "unknown field",
                    f"remove it, or check its spelling (allowed: {', '.join(allowed)})",
                )

    def _name(self, data: dict[str, Any], expected: str | None) -> str | None:
        name = data.get("name")
        if not isinstance(name, str) or not PROMPT_NAME.fullmatch(name):
            fix = f"write `name: {expected}`" if expected else "write `name: my-prompt`"
            got = "is missing" if name is None else f"is not a valid prompt name ({name!r})"
            self.add(("name",), f"{got}: lowercase letters, digits, `-_.` and `/`", fix)
            return None
        if expected is not None and name != expected:
            self.add(
                ("name",),
                f"`{name}` does not match the file's path, which names it `{expected}`",
                f"write `name: {expected}`, or move the file to {name}.yaml",
            )
            return None
        return name

    def _variables(self, raw: Any) -> dict[str, VariableSpec]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.add(
                ("variables",), "must be a mapping of names", "write `question: {type: string}`"
            )
            return {}
        out = {}
        for name, spec in raw.items():
            loc: Loc = ("variables", name)
            if not isinstance(name, str) or not IDENTIFIER.fullmatch(name):
                self.add(loc, "is not a valid variable name", "use letters, digits and `_`")
            elif (made := self._variable(name, spec or {}, loc)) is not None:
                out[name] = made
        return out

    def _variable(self, name: str, spec: Any, loc: Loc) -> VariableSpec | None:
        if not isinstance(spec, dict):
            self.add(loc, "must be a mapping", "write `{type: string, required: true}`")
            return None
        self._unknown_keys(spec, loc, VARIABLE_KEYS)
        kind = spec.get("type", "string")
        if kind not in VARIABLE_TYPES:
            self.add(
                (*loc, "type"), f"unknown type {kind!r}", f"use one of {', '.join(VARIABLE_TYPES)}"
            )
            return None
        enum = spec.get("enum")
        if enum is not None and not isinstance(enum, list):
            self.add((*loc, "enum"), "must be a list", "write `enum: [a, b]`")
            return None
        required = spec.get("required", False)
        if not isinstance(required, bool):
            self.add((*loc, "required"), "must be true or false", "write `required: true`")
            return None
        made = VariableSpec(
            kind,
            required,
            tuple(enum) if enum is not None else None,
            spec.get("default"),
            spec.get("description"),
        )
        if made.default is not None:
            try:
                check_value(name, made, made.default)
            except PromptRenderError as exc:
                self.add((*loc, "default"), f"the default is invalid: {exc}", "fix the default")
        return made

    def _template(
        self, data: dict[str, Any]
    ) -> tuple[tuple[dict[str, Any], ...] | None, str | None]:
        has_messages, has_text = "messages" in data, "text" in data
        if has_messages == has_text:
            self.add(
                (),
                "a prompt needs either `messages` or `text`, not both nor neither",
                "keep one of them",
            )
            return None, None
        if has_text:
            if not isinstance(data["text"], str):
                self.add(
                    ("text",), "must be a string (the template)", "write `text: |` and the text"
                )
                return None, None
            return None, data["text"]
        raw = data["messages"]
        if not isinstance(raw, list) or not raw:
            self.add(("messages",), "must be a non-empty list", "write `- role: user` items")
            return None, None
        return tuple(self._message(m, ("messages", i)) for i, m in enumerate(raw)), None

    def _message(self, raw: Any, loc: Loc) -> dict[str, Any]:
        if not isinstance(raw, dict):
            self.add(loc, "must be a mapping", "write `{role: user, content: ...}`")
            return {}
        self._unknown_keys(raw, loc, MESSAGE_KEYS)
        if raw.get("role") not in ROLES:
            self.add(
                (*loc, "role"),
                f"role {raw.get('role')!r} is not known",
                f"use one of {', '.join(ROLES)}",
            )
        if not isinstance(raw.get("content"), str):
            self.add((*loc, "content"), "must be a string (the template)", "write `content: ...`")
        return dict(raw)

    def _templates_compile(self, content: PromptContent) -> None:
        env = template_environment()
        if content.text is not None:
            sources: list[tuple[Loc, str]] = [(("text",), content.text)]
        else:
            sources = [
                (("messages", i, "content"), m["content"])
                for i, m in enumerate(content.messages or ())
            ]
        for loc, source in sources:
            try:
                used = referenced_variables(env, source)
            except TemplateSyntaxError as exc:
                start = self.bodies.get(loc, self.lines.get(loc, 1))
                self.add(
                    loc,
                    f"template syntax error: {exc.message}",
                    "fix the Jinja syntax",
                    line=start + (exc.lineno or 1) - 1,
                )
                continue
            undeclared = sorted(used - set(content.variables)) if content.variables else []
            for name in undeclared:
                self.add(
                    loc,
                    f"the template uses `{name}`, which is not under `variables`",
                    f"declare `{name}` under variables, or remove it from the template",
                )


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _Dumper(yaml.SafeDumper):
    """Multi-line strings as `|` blocks, so templates read as they were written."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def dump_prompt(version: PromptVersion) -> str:
    """A version as a prompt file (for versions pushed without their source text)."""
    data = content_to_dict(version.content)
    ordered: dict[str, Any] = {"name": version.name}
    if data["model"] is not None:
        ordered["model"] = data["model"]
    if data["params"]:
        ordered["params"] = data["params"]
    if data["variables"]:
        ordered["variables"] = data["variables"]
    key = "messages" if "messages" in data else "text"
    ordered[key] = data[key]
    return yaml.dump(ordered, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def load_prompt_dir(root: Path) -> list[PromptFile]:
    """Every prompt file under root (hidden ones skipped), by name; all problems at once."""
    files: list[PromptFile] = []
    problems: list[str] = []
    seen: dict[str, Path] = {}
    for path in sorted(p for p in root.rglob("*") if p.suffix in SUFFIXES and p.is_file()):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        try:
            found = read_prompt_file(path, root)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        if found.name in seen:
            problems.append(f"{path}: `{found.name}` is also in {seen[found.name]}; fix: keep one")
            continue
        seen[found.name] = path
        files.append(found)
    if problems:
        raise ConfigError(problems)
    return files
