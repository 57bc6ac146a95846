"""InMemoryPromptStore: the PromptStore fake, with the whole behaviour, for tests and demos."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from controltower.domain.ids import new_trace_id, now_us
from controltower.domain.prompt import (
    LATEST,
    AuditEvent,
    LabelAction,
    LabelMove,
    PromptContent,
    PromptLabel,
    PromptVersion,
    SplitArm,
)
from controltower.errors import InvalidRequest, NotFound
from controltower.prompts.content import (
    check_content,
    check_label_name,
    check_prompt_name,
    check_split,
    content_hash,
    split_primary,
)
from controltower.prompts.errors import ProtectedLabel


def label_state(label: PromptLabel | None) -> dict[str, Any] | None:
    """A label as the audit log records it before and after a change."""
    if label is None:
        return None
    split = [{"version": a.version, "weight": a.weight} for a in label.split]
    return {"version": label.version, "split": split, "protected": label.protected}


def protected_error(name: str, label: str) -> ProtectedLabel:
    """The error for a protected label changed without force."""
    return ProtectedLabel(
        f"label `{label}` of `{name}` is protected; pass force (the CLI's --force) to change it",
        param="label",
    )


class InMemoryPromptStore:
    """Prompts in dicts behind one lock; nothing survives the process."""

    def __init__(self, clock: Callable[[], int] = now_us) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._versions: dict[str, list[PromptVersion]] = {}  # oldest first
        self._labels: dict[str, dict[str, PromptLabel]] = {}
        self._moves: list[LabelMove] = []  # oldest first
        self._audit: list[AuditEvent] = []

    def create_version(
        self,
        name: str,
        content: PromptContent,
        *,
        message: str | None,
        author: str | None,
        source: str | None = None,
    ) -> tuple[PromptVersion, bool]:
        """Add a version unless the newest one has the same content; (version, created)."""
        check_prompt_name(name)
        check_content(content)
        digest = content_hash(content)
        with self._lock:
            versions = self._versions.setdefault(name, [])
            if versions and versions[-1].content_hash == digest:
                return versions[-1], False
            made = PromptVersion(
                name, len(versions) + 1, content, digest, self._clock(), message, author, source
            )
            versions.append(made)
            self._labels.setdefault(name, {})
            before = {"version": versions[-2].version} if len(versions) > 1 else None
            self._record(
                author,
                "prompt.create_version",
                name,
                before,
                {"version": made.version, "content_hash": digest},
            )
            return made, True

    def get_version(
        self, name: str, *, version: int | None = None, label: str | None = None
    ) -> PromptVersion:
        """A version by number, or the one a label points at (`latest` by default)."""
        if version is not None and label is not None:
            raise InvalidRequest("ask for a version or a label, not both")
        with self._lock:
            versions = self._prompt(name)
            if version is not None:
                return self._version(name, version)
            if label is None or label == LATEST:
                return versions[-1]
            return versions[self._label(name, label).version - 1]

    def list_prompts(self) -> list[tuple[PromptVersion, list[PromptLabel]]]:
        """Every prompt's newest version with its labels, by name."""
        with self._lock:
            return [(self._versions[n][-1], self._all_labels(n)) for n in sorted(self._versions)]

    def list_versions(self, name: str) -> list[PromptVersion]:
        """A prompt's versions, newest first."""
        with self._lock:
            return list(reversed(self._prompt(name)))

    def labels(self, name: str) -> list[PromptLabel]:
        """A prompt's labels (with `latest`), by label name."""
        with self._lock:
            self._prompt(name)
            return self._all_labels(name)

    def move_label(
        self,
        name: str,
        label: str,
        version: int,
        *,
        actor: str | None,
        force: bool = False,
        protect: bool | None = None,
    ) -> LabelMove:
        """Point a label at a version (creating the label); kept in history and audited."""
        check_label_name(label)
        with self._lock:
            self._version(name, version)
            old = self._labels[name].get(label)
            moves = old is None or old.version != version or bool(old.split)
            unprotects = old is not None and old.protected and protect is False
            if old is not None and old.protected and (moves or unprotects) and not force:
                raise protected_error(name, label)
            protected = (old.protected if old else False) if protect is None else protect
            new = PromptLabel(name, label, version, protected, (), self._clock())
            if not moves:
                return self._protect(old, new, actor) if old else self._last_move(name, label)
            move = self._move(old, new, "create" if old is None else "move", actor)
            self._record(actor, "label.move", f"{name}@{label}", label_state(old), label_state(new))
            if old is not None and old.protected != protected:
                self._record(
                    actor,
                    "label.protect",
                    f"{name}@{label}",
                    {"protected": old.protected},
                    {"protected": protected},
                )
            return move

    def split_label(
        self, name: str, label: str, arms: list[SplitArm], *, actor: str | None, force: bool = False
    ) -> LabelMove:
        """Make a label split traffic between versions by weight."""
        check_label_name(label)
        split = check_split(arms)
        with self._lock:
            for arm in split:
                self._version(name, arm.version)
            old = self._labels[name].get(label)
            if old is not None and old.protected and not force:
                raise protected_error(name, label)
            protected = old.protected if old else False
            new = PromptLabel(name, label, split_primary(split), protected, split, self._clock())
            move = self._move(old, new, "split", actor)
            self._record(
                actor, "label.split", f"{name}@{label}", label_state(old), label_state(new)
            )
            return move

    def rollback(
        self, name: str, label: str, *, actor: str | None, force: bool = False
    ) -> LabelMove:
        """Move a label back to where it pointed before its last move."""
        check_label_name(label)
        with self._lock:
            old = self._label(name, label)
            if old.protected and not force:
                raise protected_error(name, label)
            last = self._last_move(name, label)
            if last.previous_version is None:
                raise InvalidRequest(
                    f"label `{label}` of `{name}` has no earlier version to roll back to",
                    param="label",
                )
            new = replace(old, version=last.previous_version, split=(), updated_us=self._clock())
            move = self._move(old, new, "rollback", actor)
            self._record(
                actor, "label.rollback", f"{name}@{label}", label_state(old), label_state(new)
            )
            return move

    def label_history(self, name: str, label: str | None = None) -> list[LabelMove]:
        """Moves of a prompt's labels (of one label), newest first."""
        with self._lock:
            self._prompt(name)
            return [
                m
                for m in reversed(self._moves)
                if m.prompt == name and (label is None or m.label == label)
            ]

    def audit_events(self, target: str | None = None, limit: int = 100) -> list[AuditEvent]:
        """Audit events, newest first, of one prompt (its labels included) or all."""
        with self._lock:
            found = [e for e in reversed(self._audit) if _matches(e.target, target)]
            return found[:limit]

    def version_marker(self) -> object:
        """A value that changes whenever any prompt, label or split changes (cheap to read)."""
        # every change writes one audit event, and events are never removed
        with self._lock:
            return len(self._audit)

    # The helpers below run with the lock held.

    def _prompt(self, name: str) -> list[PromptVersion]:
        versions = self._versions.get(name)
        if not versions:
            raise NotFound(f"prompt `{name}` not found", param="name")
        return versions

    def _version(self, name: str, version: int) -> PromptVersion:
        versions = self._prompt(name)
        if not 1 <= version <= len(versions):
            raise NotFound(f"prompt `{name}` has no version {version}", param="version")
        return versions[version - 1]

    def _label(self, name: str, label: str) -> PromptLabel:
        self._prompt(name)
        found = self._labels[name].get(label)
        if found is None:
            raise NotFound(f"prompt `{name}` has no label `{label}`", param="label")
        return found

    def _all_labels(self, name: str) -> list[PromptLabel]:
        newest = self._versions[name][-1]
        latest = PromptLabel(name, LATEST, newest.version, updated_us=newest.created_us)
        return sorted([latest, *self._labels[name].values()], key=lambda lb: lb.label)

    def _last_move(self, name: str, label: str) -> LabelMove:
        for move in reversed(self._moves):
            if move.prompt == name and move.label == label:
                return move
        raise NotFound(f"prompt `{name}` has no label `{label}`", param="label")

    def _move(
        self, old: PromptLabel | None, new: PromptLabel, action: LabelAction, actor: str | None
    ) -> LabelMove:
        self._labels[new.prompt][new.label] = new
        previous = old.version if old is not None else None
        move = LabelMove(
            new.prompt, new.label, new.version, previous, action, actor, new.updated_us, new.split
        )
        self._moves.append(move)
        return move

    def _protect(self, old: PromptLabel, new: PromptLabel, actor: str | None) -> LabelMove:
        if old.protected != new.protected:
            self._labels[new.prompt][new.label] = replace(old, protected=new.protected)
            self._record(
                actor,
                "label.protect",
                f"{new.prompt}@{new.label}",
                {"protected": old.protected},
                {"protected": new.protected},
            )
        return self._last_move(new.prompt, new.label)

    def _record(
        self,
        actor: str | None,
        action: str,
        target: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> None:
        self._audit.append(
            AuditEvent(new_trace_id(), self._clock(), actor, action, target, before, after)
        )


def _matches(target: str, wanted: str | None) -> bool:
    if wanted is None or target == wanted:
        return True
    return "@" not in wanted and target.startswith(wanted + "@")
