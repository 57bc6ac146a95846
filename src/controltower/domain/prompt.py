"""Prompts as versioned artifacts: immutable versions, movable labels, their history."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

VariableType = Literal["string", "number", "integer", "boolean", "array", "object"]
LabelAction = Literal["create", "move", "rollback", "split"]
LATEST = "latest"  # the label that always follows the newest version; it cannot be moved


@dataclass(frozen=True, slots=True)
class VariableSpec:
    """What one template variable must be."""

    type: VariableType = "string"
    required: bool = False
    enum: tuple[Any, ...] | None = None
    default: Any = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class PromptContent:
    """What a version holds, apart from its identity: the template and its configuration.

    Exactly one of `messages` (chat: [{"role": ..., "content": template}, ...]) and `text`
    (a plain-text template) is set.
    """

    messages: tuple[dict[str, Any], ...] | None = None
    text: str | None = None
    model: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, VariableSpec] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PromptVersion:
    """One immutable, numbered version of a prompt (numbers start at 1)."""

    name: str
    version: int
    content: PromptContent
    content_hash: str  # of the content alone: pushing the same content twice is a no-op
    created_us: int
    message: str | None = None  # the commit message
    author: str | None = None
    # the file it was pushed from, as written (comments and layout kept), for `pull`
    source: str | None = None


@dataclass(frozen=True, slots=True)
class SplitArm:
    """One version of a label's A/B split, and its share of the traffic (weights sum up)."""

    version: int
    weight: float


@dataclass(frozen=True, slots=True)
class PromptLabel:
    """A name (`production`, `staging`…) pointing at a version, or splitting between some."""

    prompt: str
    label: str
    version: int
    protected: bool = False
    split: tuple[SplitArm, ...] = ()  # empty: all traffic to `version`
    updated_us: int = 0


@dataclass(frozen=True, slots=True)
class LabelMove:
    """One change of a label, kept forever: rollback walks this history back."""

    prompt: str
    label: str
    version: int
    previous_version: int | None
    action: LabelAction
    actor: str | None
    at_us: int
    split: tuple[SplitArm, ...] = ()


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """Who did what to which prompt, when, with the state before and after."""

    id: str
    at_us: int
    actor: str | None
    action: str  # prompt.create_version, label.move, label.rollback, label.split, label.protect
    target: str  # "refund-policy" or "refund-policy@production"
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
