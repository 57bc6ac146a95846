"""The names of versioned artifacts (prompts, datasets) and of their labels and tags."""

from __future__ import annotations

import re

from controltower.errors import InvalidRequest

LABEL_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
ARTIFACT_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*")
MAX_NAME = 200


def check_artifact_name(name: str, what: str) -> str:
    """The name when valid (lowercase, digits, `-_.`, `/` between folders); `what` is
    "prompt" or "dataset", for the message."""
    if len(name) > MAX_NAME or not ARTIFACT_NAME.fullmatch(name):
        raise InvalidRequest(
            f"invalid {what} name {name!r}: use lowercase letters, digits, `-`, `_`, `.`, "
            "and `/` between folder names",
            param="name",
        )
    return name


def check_label(label: str, what: str = "label") -> str:
    """The label (or tag) when valid: 1-64 lowercase letters, digits, `-`, `_`, `.`."""
    if not LABEL_NAME.fullmatch(label):
        raise InvalidRequest(
            f"invalid {what} {label!r}: use 1-64 lowercase letters, digits, `-`, `_`, `.`",
            param=what,
        )
    return label
