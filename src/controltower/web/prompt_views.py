"""What the prompt pages show, built from the prompt store as plain data for the templates."""

from __future__ import annotations

from typing import Any

from jinja2 import TemplateSyntaxError

from controltower.domain.prompt import (
    LATEST,
    PromptLabel,
    PromptVersion,
    VariableSpec,
)
from controltower.prompts import PromptStore, diff_versions
from controltower.prompts.content import (
    content_to_dict,
    label_arms,
    variable_to_dict,
    version_or_label,
)
from controltower.prompts.render import referenced_variables, template_environment
from controltower.store.prompt_forms import event_to_api, label_to_api, move_to_api
from controltower.store.serialize import us_to_iso

AUDIT_LIMIT = 100


def prompt_list(store: PromptStore) -> list[dict[str, Any]]:
    """One row per prompt: its newest version, model and labels."""
    return [
        {
            "name": newest.name,
            "version": newest.version,
            "model": newest.content.model,
            "message": newest.message,
            "author": newest.author,
            "updated_time": us_to_iso(newest.created_us),
            "labels": [label_to_api(label) for label in labels if label.label != LATEST],
        }
        for newest, labels in store.list_prompts()
    ]


def prompt_view(store: PromptStore, name: str) -> dict[str, Any]:
    """A prompt's page: versions with their labels, labels, history, audit, playground data."""
    versions = store.list_versions(name)
    labels = store.labels(name)
    history = store.label_history(name)
    events = store.audit_events(name, AUDIT_LIMIT)
    by_version = _labels_by_version(labels)
    rows = [_version_row(v, by_version.get(v.version, [])) for v in versions]
    return {
        "name": name,
        "newest": rows[0],
        "versions": rows,
        "labels": [label_to_api(label) for label in labels],
        "history": [move_to_api(move) for move in history],
        "events": [event_to_api(event) for event in events],
        "data": {
            "name": name,
            "versions": [_playground_version(v) for v in versions],
            "labels": [label_to_api(label) for label in labels],
        },
    }


def audit_view(store: PromptStore, limit: int = 500) -> list[dict[str, Any]]:
    """The newest audit events of every prompt."""
    return [event_to_api(event) for event in store.audit_events(None, limit)]


def diff_view(store: PromptStore, name: str, a: str | None, b: str | None) -> dict[str, Any]:
    """Two versions (by number or label; the newest two by default) and their diff."""
    versions = store.list_versions(name)
    newest = versions[0].version
    right = _pick(store, name, b, "b") if b else versions[0]
    left = _pick(store, name, a, "a") if a else store.get_version(name, version=max(1, newest - 1))
    diff = diff_versions(left, right)
    return {
        "name": name,
        "a": _version_row(left, []),
        "b": _version_row(right, []),
        "a_param": a or str(left.version),
        "b_param": b or str(right.version),
        "choices": [v.version for v in versions],
        "label_names": [label.label for label in store.labels(name)],
        "template_lines": diff_lines(diff.template),
        "config_lines": diff_lines(diff.config),
        "same": not diff.text,
    }


def diff_lines(text: str) -> list[tuple[str, str]]:
    """A unified diff as (kind, line) pairs: head, hunk, add, del or ctx."""
    out = []
    for line in text.splitlines():
        if line.startswith(("---", "+++")):
            kind = "head"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "ctx"
        out.append((kind, line))
    return out


def _pick(store: PromptStore, name: str, raw: str, param: str) -> PromptVersion:
    # `?a=3` is a version number, `?a=production` a label
    version, label = version_or_label(raw, param)
    return store.get_version(name, version=version, label=label)


def _labels_by_version(labels: list[PromptLabel]) -> dict[int, list[dict[str, Any]]]:
    found: dict[int, list[dict[str, Any]]] = {}
    for label in labels:
        arms = label_arms(label)
        total = sum(arm.weight for arm in arms)
        for arm in arms:
            share = round(100 * arm.weight / total) if label.split else None
            badge = {"label": label.label, "share": share, "protected": label.protected}
            found.setdefault(arm.version, []).append(badge)
    return found


def _version_row(version: PromptVersion, labels: list[dict[str, Any]]) -> dict[str, Any]:
    content = content_to_dict(version.content)
    return {
        "version": version.version,
        "message": version.message,
        "author": version.author,
        "created_time": us_to_iso(version.created_us),
        "content_hash": version.content_hash,
        "model": version.content.model,
        "params": content["params"],
        "messages": content.get("messages"),
        "text": content.get("text"),
        "variables": content["variables"],
        "labels": labels,
    }


def _playground_version(version: PromptVersion) -> dict[str, Any]:
    """What the playground's form needs of a version: its model, params and variables."""
    return {
        "version": version.version,
        "model": version.content.model,
        "params": dict(version.content.params),
        "variables": form_fields(version),
    }


def form_fields(version: PromptVersion) -> list[dict[str, Any]]:
    """The playground's fields: the variable schema, or (without one) what the template reads."""
    schema = version.content.variables
    if schema:
        return [{"name": name, **variable_to_dict(spec)} for name, spec in schema.items()]
    # without a schema the renderer requires every name the template reads
    loose = VariableSpec(type="string", required=True)
    return [{"name": name, **variable_to_dict(loose)} for name in sorted(_referenced(version))]


def _referenced(version: PromptVersion) -> set[str]:
    env = template_environment()
    content = version.content
    sources = [content.text] if content.text is not None else []
    sources += [str(m.get("content", "")) for m in content.messages or ()]
    names: set[str] = set()
    for source in sources:
        try:
            names |= referenced_variables(env, source)
        except TemplateSyntaxError:
            continue  # rendering will name the syntax error
    return names
