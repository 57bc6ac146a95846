"""Datasets: items to evaluate against, kept as immutable, content-hashed versions."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from controltower.domain.names import check_artifact_name, check_label
from controltower.errors import InvalidRequest


@dataclass(frozen=True, slots=True)
class DatasetItem:
    """One case: an `input` (text or chat messages) or template `variables`, and what is
    expected of the answer.

    `expected` is whatever the scorers compare with: a string, a number, a JSON value or
    a tool call; `metadata` is free-form (a category, the trace it came from, ...).
    """

    id: str
    input: Any = None
    variables: dict[str, Any] = field(default_factory=dict)
    expected: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The item as one JSONL record (fields that are empty are left out)."""
        record: dict[str, Any] = {"id": self.id}
        if self.input is not None:
            record["input"] = self.input
        if self.variables:
            record["variables"] = self.variables
        if self.expected is not None:
            record["expected"] = self.expected
        if self.metadata:
            record["metadata"] = self.metadata
        return record


@dataclass(frozen=True, slots=True)
class DatasetVersion:
    """One immutable version of a dataset: its number, content hash and tags."""

    dataset: str
    version: int
    hash: str
    item_count: int
    created_us: int
    tags: tuple[str, ...] = ()
    message: str | None = None
    project: str = "default"

    @property
    def ref(self) -> str:
        """`NAME#VERSION`, the reference that always reads these items."""
        return f"{self.dataset}#{self.version}"


def merged_items(
    existing: Sequence[DatasetItem], added: Iterable[DatasetItem]
) -> list[DatasetItem]:
    """The existing items, then the added ones whose ids are new (an id that is there keeps
    its item as it is)."""
    seen = {item.id for item in existing}
    out = list(existing)
    for item in added:
        if item.id not in seen:
            seen.add(item.id)
            out.append(item)
    return out


def item_hash(item: DatasetItem) -> str:
    """The sha256 of one item's canonical JSON (keys sorted, no spaces)."""
    canonical = json.dumps(
        item.as_json(), sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str
    )
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def items_hash(items: Iterable[DatasetItem]) -> str:
    """The content hash of a version: a set of items keyed by id, so their order is not
    part of it (and neither is the order of the keys in any object)."""
    return hashes_digest((item.id, item_hash(item)) for item in items)


def hashes_digest(hashes: Iterable[tuple[str, str]]) -> str:
    """`items_hash` from each item's (id, `item_hash`), for a caller that has them."""
    digest = hashlib.sha256()
    for _, one in sorted(hashes, key=lambda pair: pair[0]):
        digest.update(one.encode())
    return digest.hexdigest()


MAX_ITEM_ID = 200


def check_dataset_name(name: str) -> str:
    """The name when valid: lowercase letters, digits, `-_.`, and `/` between folders."""
    return check_artifact_name(name, "dataset")


def check_tag(tag: str) -> str:
    """The tag when valid (1-64 lowercase letters, digits, `-_.`; not only digits)."""
    check_label(tag, "tag")
    if tag.isdigit():
        raise InvalidRequest(
            f"invalid tag {tag!r}: not only digits (a number is a version)", param="tag"
        )
    return tag


def check_reference(version: int | None, tag: str | None, as_of_us: int | None) -> None:
    """InvalidRequest when more than one of a version, a tag and a time is asked for."""
    if sum(x is not None for x in (version, tag, as_of_us)) > 1:
        raise InvalidRequest("ask for a version, a tag or a time, not several", param="version")
