"""The `PromptStore` seam: versions, labels, their history and the audit log."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from controltower.domain.prompt import (
    AuditEvent,
    LabelMove,
    PromptContent,
    PromptLabel,
    PromptVersion,
    SplitArm,
)


@runtime_checkable
class PromptStore(Protocol):
    """Durable prompts. Versions never change once written; labels move, and every move
    is kept. Errors: controltower.errors.NotFound for an unknown prompt, version or label;
    controltower.prompts.ProtectedLabel for a protected label moved without `force`;
    InvalidRequest for a bad label name or split."""

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
        ...

    def get_version(
        self, name: str, *, version: int | None = None, label: str | None = None
    ) -> PromptVersion:
        """A version by number, or the one a label points at (`latest` by default)."""
        ...

    def list_prompts(self) -> list[tuple[PromptVersion, list[PromptLabel]]]:
        """Every prompt's newest version with its labels, by name."""
        ...

    def list_versions(self, name: str) -> list[PromptVersion]:
        """A prompt's versions, newest first."""
        ...

    def labels(self, name: str) -> list[PromptLabel]:
        """A prompt's labels (with `latest`), by label name."""
        ...

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
        ...

    def split_label(
        self, name: str, label: str, arms: list[SplitArm], *, actor: str | None, force: bool = False
    ) -> LabelMove:
        """Make a label split traffic between versions by weight."""
        ...

    def rollback(
        self, name: str, label: str, *, actor: str | None, force: bool = False
    ) -> LabelMove:
        """Move a label back to where it pointed before its last move."""
        ...

    def label_history(self, name: str, label: str | None = None) -> list[LabelMove]:
        """Moves of a prompt's labels (of one label), newest first."""
        ...

    def audit_events(self, target: str | None = None, limit: int = 100) -> list[AuditEvent]:
        """Audit events, newest first, of one prompt (its labels included) or all."""
        ...

    def version_marker(self) -> object:
        """A value that changes whenever any prompt, label or split changes (cheap to read)."""
        ...
