"""What a version holds, as plain data: names' rules, the canonical hash, and diffs."""

from __future__ import annotations

import difflib
import hashlib
import random
from dataclasses import dataclass
from typing import Any, get_args

import orjson
import yaml

from controltower.domain.names import ARTIFACT_NAME, check_artifact_name, check_label
from controltower.domain.prompt import (
    LATEST,
    PromptContent,
    PromptLabel,
    PromptVersion,
    SplitArm,
    VariableSpec,
    VariableType,
)
from controltower.errors import InvalidRequest

PROMPT_NAME = ARTIFACT_NAME
VARIABLE_TYPES: tuple[str, ...] = get_args(VariableType)


def check_prompt_name(name: str) -> str:
    """The name when it is a valid prompt name (lowercase, digits, `-_.`, `/` for folders)."""
    return check_artifact_name(name, "prompt")


def check_label_name(label: str, *, movable: bool = True) -> str:
    """The label when valid; `latest` is refused when the label is to be moved or split."""
    check_label(label)
    if movable and label == LATEST:
        raise InvalidRequest(
            "`latest` follows the newest version; it cannot be moved or split", param="label"
        )
    return label


def check_split(arms: list[SplitArm]) -> tuple[SplitArm, ...]:
    """The arms of a valid split: two or more distinct versions with positive weights."""
    versions = [arm.version for arm in arms]
    if len(set(versions)) < 2 or len(set(versions)) != len(versions):
        raise InvalidRequest("a split needs two or more different versions", param="arms")
    if any(not arm.weight > 0 for arm in arms):
        raise InvalidRequest("every split weight must be a positive number", param="arms")
    return tuple(arms)


def split_primary(arms: tuple[SplitArm, ...]) -> int:
    """The version a split label reports as its own: the heaviest arm (the first on ties)."""
    return max(arms, key=lambda arm: arm.weight).version


def check_content(content: PromptContent) -> PromptContent:
    """The content when it has exactly one of messages and text."""
    if (content.messages is None) == (content.text is None):
        raise InvalidRequest("a prompt has either `messages` or `text`, not both nor neither")
    return content


def variable_to_dict(spec: VariableSpec) -> dict[str, Any]:
    """A variable's spec as JSON-ready data, without the fields left at their defaults."""
    out: dict[str, Any] = {"type": spec.type}
    if spec.required:
        out["required"] = True
    if spec.enum is not None:
        out["enum"] = list(spec.enum)
    if spec.default is not None:
        out["default"] = spec.default
    if spec.description is not None:
        out["description"] = spec.description
    return out


def content_to_dict(content: PromptContent) -> dict[str, Any]:
    """Content as JSON-ready data (for the store's JSON columns, the API and the hash)."""
    out: dict[str, Any] = {}
    if content.messages is not None:
        out["messages"] = [dict(m) for m in content.messages]
    else:
        out["text"] = content.text
    out["model"] = content.model
    out["params"] = dict(content.params)
    out["variables"] = {k: variable_to_dict(v) for k, v in content.variables.items()}
    return out


def content_from_dict(data: dict[str, Any]) -> PromptContent:
    """The inverse of content_to_dict (trusted data, e.g. read back from the store)."""
    messages = data.get("messages")
    variables = {
        name: VariableSpec(
            type=spec.get("type", "string"),
            required=bool(spec.get("required", False)),
            enum=tuple(spec["enum"]) if spec.get("enum") is not None else None,
            default=spec.get("default"),
            description=spec.get("description"),
        )
        for name, spec in (data.get("variables") or {}).items()
    }
    return PromptContent(
        messages=tuple(dict(m) for m in messages) if messages is not None else None,
        text=data.get("text"),
        model=data.get("model"),
        params=dict(data.get("params") or {}),
        variables=variables,
    )


def content_hash(content: PromptContent) -> str:
    """sha256 of the content's canonical JSON: the same content always hashes the same."""
    canonical = orjson.dumps(content_to_dict(content), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def content_difference(a: PromptContent, b: PromptContent) -> str | None:
    """The first field in which two contents differ (`params`, `messages[1].content` ...)."""
    left, right = content_to_dict(a), content_to_dict(b)
    for key in ("messages", "text", "model", "params", "variables"):
        mine, theirs = left.get(key), right.get(key)
        if not _differ(mine, theirs):
            continue
        if key == "messages" and mine and theirs and len(mine) == len(theirs):
            i = next(i for i, pair in enumerate(zip(mine, theirs, strict=True)) if _differ(*pair))
            return f"messages[{i}].{_first_key(mine[i], theirs[i])}"
        if key == "variables":  # always a mapping in content_to_dict
            return f"variables.{_first_key(left[key], right[key])}"
        return key
    return None


def _first_key(a: dict[str, Any], b: dict[str, Any]) -> str:
    return next(k for k in sorted(set(a) | set(b)) if _differ(a.get(k), b.get(k)))


def _differ(a: Any, b: Any) -> bool:
    return _canonical(a) != _canonical(b)


def _canonical(value: Any) -> bytes:
    # as the hash sees it: 1 and true differ, key order does not
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


@dataclass(frozen=True, slots=True)
class VersionDiff:
    """Unified diffs of two versions' templates and of their configuration."""

    template: str
    config: str

    @property
    def text(self) -> str:
        """Both diffs, template first; empty when the versions hold the same content."""
        return self.template + self.config


def _template_lines(content: PromptContent) -> list[str]:
    if content.text is not None:
        return _lines(content.text)
    lines: list[str] = []
    for i, message in enumerate(content.messages or ()):
        lines.append(f"[{i}] {message.get('role')}:\n")
        lines.extend(_lines(str(message.get("content", ""))))
    return lines


def _config_lines(content: PromptContent) -> list[str]:
    data = content_to_dict(content)
    data.pop("messages", None)
    data.pop("text", None)
    dumped = yaml.safe_dump(data, sort_keys=True, allow_unicode=True, default_flow_style=False)
    return _lines(dumped)


def _lines(text: str) -> list[str]:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return lines


def diff_versions(a: PromptVersion, b: PromptVersion) -> VersionDiff:
    """What changed from version a to version b, as unified diffs (template, then config)."""
    left, right = f"{a.name}#{a.version}", f"{b.name}#{b.version}"
    template = difflib.unified_diff(
        _template_lines(a.content),
        _template_lines(b.content),
        f"{left} template",
        f"{right} template",
    )
    config = difflib.unified_diff(
        _config_lines(a.content), _config_lines(b.content), f"{left} config", f"{right} config"
    )
    return VersionDiff("".join(template), "".join(config))


def version_number(raw: str) -> int | None:
    """The version a text names (ASCII digits, 1 to 2^63-1), or None: no other text (`²`,
    `0`, a 5,000-digit number) names a version a store could hold."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19:
        return None
    number = int(raw)
    return number if 0 < number < 2**63 else None


def version_or_label(ref: str, param: str) -> tuple[int | None, str | None]:
    """(version, label) of a reference to one version of a known prompt: `3` or `#3` is a
    version number, `production` or `@production` a label."""
    ref = ref.strip().lstrip("#@")
    number = version_number(ref)
    if number is not None:
        return number, None
    if not ref:
        raise InvalidRequest(f"`{param}` must be a version number or a label", param=param)
    return None, ref


def label_arms(label: PromptLabel) -> tuple[SplitArm, ...]:
    """The versions a label serves, by weight: its split's arms, or its one version."""
    return label.split or (SplitArm(label.version, 1.0),)


def label_serves(label: PromptLabel, version: int) -> bool:
    """Whether a label sends any traffic to a version."""
    return any(arm.version == version for arm in label_arms(label))


def sticky_key(user_id: str | None, session_id: str | None) -> str | None:
    """What keeps a caller on one arm of a split: its user, else its session, else None."""
    if user_id:
        return f"user:{user_id}"
    if session_id:
        return f"session:{session_id}"
    return None


_HASH_SCALE = float(2**64)


def pick_version(label: PromptLabel, sticky_key: str | None) -> int:
    """The version a label sends this call to: its own, or a split arm chosen by weight.

    With a sticky key (see `sticky_key`) the arm is a stable hash of the label and the key,
    so one user always gets the same version while the split stands; without one, random.
    """
    if not label.split:
        return label.version
    if sticky_key is None:
        point = random.random()
    else:
        digest = hashlib.blake2b(
            f"{label.prompt}@{label.label}\x00{sticky_key}".encode(), digest_size=8
        ).digest()
        point = int.from_bytes(digest, "big") / _HASH_SCALE
    point *= sum(arm.weight for arm in label.split)
    for arm in label.split:
        point -= arm.weight
        if point < 0:
            return arm.version
    return label.split[-1].version
