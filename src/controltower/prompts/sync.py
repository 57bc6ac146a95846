"""The Git workflow: push a directory of prompt files to the store, pull them back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from controltower.errors import NotFound
from controltower.prompts.content import content_hash
from controltower.prompts.files import SUFFIXES, PromptFile, dump_prompt, load_prompt_dir
from controltower.prompts.memory import protected_error
from controltower.prompts.store import PromptStore


@dataclass(frozen=True, slots=True)
class Pushed:
    """What a push did with one file."""

    name: str
    path: Path
    version: int
    created: bool  # False: the content was the newest version's already
    label_moved: bool = False


@dataclass(frozen=True, slots=True)
class Pulled:
    """What a pull wrote (or, when the prompt has no such label, skipped)."""

    name: str
    path: Path | None
    version: int | None


def push_dir(
    store: PromptStore,
    root: Path,
    *,
    label: str | None = None,
    message: str | None = None,
    author: str | None = None,
    force: bool = False,
) -> list[Pushed]:
    """Create a version for each prompt file whose content changed; idempotent.

    Every file is parsed before anything is written, so a file that does not parse
    leaves the store untouched (ConfigError naming each FILE:LINE).
    """
    files = load_prompt_dir(root)
    if label is not None and not force:
        _refuse_protected(store, files, label)
    report = []
    for found in files:
        version, created = store.create_version(
            found.name, found.content, message=message, author=author, source=found.source
        )
        moved = False
        if label is not None and _points_elsewhere(store, found.name, label, version.version):
            store.move_label(found.name, label, version.version, actor=author, force=force)
            moved = True
        report.append(Pushed(found.name, found.path, version.version, created, moved))
    return report


def _refuse_protected(store: PromptStore, files: list[PromptFile], label: str) -> None:
    # Checked before anything is written, so a refused push leaves no new version behind.
    names = {found.name: found for found in files}
    for newest, labels in store.list_prompts():
        found = names.get(newest.name)
        current = next((lb for lb in labels if lb.label == label), None)
        if found is None or current is None or not current.protected:
            continue
        stays = current.version == newest.version and not current.split
        if not stays or newest.content_hash != content_hash(found.content):
            raise protected_error(newest.name, label)


def _points_elsewhere(store: PromptStore, name: str, label: str, version: int) -> bool:
    for current in store.labels(name):
        if current.label == label:
            return current.version != version or bool(current.split)
    return True


def pull_dir(store: PromptStore, root: Path, *, label: str | None = None) -> list[Pulled]:
    """Write one file per prompt (the version at label, `latest` by default).

    The pushed source is written as it was, so pushing then pulling reproduces the files
    byte for byte; a version made without a file (through the API) is written as YAML.
    """
    report = []
    for newest, _ in store.list_prompts():
        try:
            version = store.get_version(newest.name, label=label)
        except NotFound:
            report.append(Pulled(newest.name, None, None))
            continue
        path = _target(root, newest.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = version.source if version.source is not None else dump_prompt(version)
        path.write_bytes(text.encode("utf-8"))
        report.append(Pulled(newest.name, path, version.version))
    return report


def _target(root: Path, name: str) -> Path:
    # Keep the suffix of a file already there, so a `.yml` is not doubled by a `.yaml`.
    for suffix in SUFFIXES:
        existing = root / f"{name}{suffix}"
        if existing.is_file():
            return existing
    return root / f"{name}{SUFFIXES[0]}"
