"""The SQL dataset store: immutable, content-hashed versions; tags; items stored by content.

A version is a list of (position, item id, content hash) rows; an item's content is
stored once in `dataset_item_contents`, however many versions hold it, so pushing a
500-item dataset with one item changed writes one content row and 500 small rows.
A push locks its dataset's row (as prompt pushes do), so version numbers never collide.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from controltower.domain.dataset import (
    DatasetItem,
    DatasetVersion,
    check_dataset_name,
    check_reference,
    check_tag,
    hashes_digest,
    item_hash,
    merged_items,
)
from controltower.domain.ids import now_us
from controltower.errors import InvalidRequest, NotFound
from controltower.store.schema import store_tables

_CHUNK = 500  # rows per statement: SQLite binds at most 32,766 parameters


class SqlDatasetStore:
    """The DatasetStore on SQLite or PostgreSQL; returns domain objects."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        tables = store_tables()
        self._datasets = tables["datasets"]
        self._versions = tables["dataset_versions"]
        self._contents = tables["dataset_item_contents"]
        self._members = tables["dataset_version_items"]
        self._tags = tables["dataset_tags"]

    @property
    def engine(self) -> Engine:
        """The engine the store runs on."""
        return self._engine

    def push_dataset(
        self,
        name: str,
        items: Sequence[DatasetItem],
        *,
        message: str | None = None,
        author: str | None = None,
        project: str = "default",
    ) -> tuple[DatasetVersion, bool]:
        """Add a version unless the newest one has the same content; (version, created)."""
        check_dataset_name(name)
        check_item_ids(items)
        hashes = [item_hash(item) for item in items]
        digest = hashes_digest(zip((item.id for item in items), hashes, strict=True))
        at_us = now_us()
        with self._engine.begin() as conn:
            latest = self._lock_or_create(conn, name, project, at_us)
            if latest:
                newest = self._version(conn, name, latest)
                if newest.hash == digest:
                    return newest, False
            made = DatasetVersion(name, latest + 1, digest, len(items), at_us, (), message, project)
            self._insert_version(conn, made, author, items, hashes)
        return made, True

    def extend_dataset(
        self,
        name: str,
        items: Sequence[DatasetItem],
        *,
        message: str | None = None,
        author: str | None = None,
        project: str = "default",
    ) -> tuple[DatasetVersion, int]:
        """Add the items whose ids are new as a new version, read and written in the
        transaction that holds the dataset's lock; (version, how many items were new)."""
        check_dataset_name(name)
        at_us = now_us()
        with self._engine.begin() as conn:
            latest = self._lock_or_create(conn, name, project, at_us)
            existing = self._items(conn, name, latest) if latest else []
            combined = merged_items(existing, items)
            new = len(combined) - len(existing)
            if latest and not new:
                return self._version(conn, name, latest), 0
            check_item_ids(combined)
            hashes = [item_hash(item) for item in combined]
            digest = hashes_digest(zip((item.id for item in combined), hashes, strict=True))
            made = DatasetVersion(
                name, latest + 1, digest, len(combined), at_us, (), message, project
            )
            self._insert_version(conn, made, author, combined, hashes)
        return made, new

    def dataset_version(
        self,
        name: str,
        *,
        version: int | None = None,
        tag: str | None = None,
        as_of_us: int | None = None,
    ) -> DatasetVersion:
        """A version by number, by tag, or the newest one made at or before a time."""
        check_reference(version, tag, as_of_us)
        with self._engine.connect() as conn:
            if tag is not None:
                version = self._tagged(conn, name, tag)
            elif as_of_us is not None:
                version = self._as_of(conn, name, as_of_us)
            elif version is None:
                version = self._latest(conn, name)
            return self._version(conn, name, version)

    def dataset_items(self, name: str, version: int) -> list[DatasetItem]:
        """The items of one version, in the order they were pushed."""
        with self._engine.connect() as conn:
            self._version(conn, name, version)  # NotFound for a version that is not there
            return self._items(conn, name, version)

    def list_datasets(self, project: str | None = None) -> list[DatasetVersion]:
        """Every dataset's newest version, by name."""
        d, v = self._datasets, self._versions
        query = (
            sa.select(v, d.c.project)
            .join(d, sa.and_(d.c.name == v.c.dataset, d.c.latest_version == v.c.version))
            .order_by(v.c.dataset)
        )
        if project is not None:
            query = query.where(d.c.project == project)
        with self._engine.connect() as conn:
            tags = self._all_tags(conn)
            return [
                _version_of(row, tags.get((row.dataset, row.version), ()))
                for row in conn.execute(query)
            ]

    def list_dataset_versions(self, name: str) -> list[DatasetVersion]:
        """A dataset's versions, newest first, with their tags."""
        v, d = self._versions, self._datasets
        query = (
            sa.select(v, d.c.project)
            .join(d, d.c.name == v.c.dataset)
            .where(v.c.dataset == name)
            .order_by(v.c.version.desc())
        )
        with self._engine.connect() as conn:
            tags = self._all_tags(conn, name)
            found = [
                _version_of(row, tags.get((name, row.version), ())) for row in conn.execute(query)
            ]
        if not found:
            raise _no_dataset(name)
        return found

    def tag_dataset(self, name: str, tag: str, version: int) -> DatasetVersion:
        """Point a tag at a version (moving it if it pointed elsewhere)."""
        check_tag(tag)
        t, at_us = self._tags, now_us()
        dialect = postgresql if self._engine.dialect.name == "postgresql" else sqlite
        with self._engine.begin() as conn:
            self._version(conn, name, version)
            insert = dialect.insert(t).values(
                dataset=name, tag=tag, version=version, updated_us=at_us
            )
            conn.execute(
                insert.on_conflict_do_update(
                    index_elements=[t.c.dataset, t.c.tag],
                    set_={"version": version, "updated_us": at_us},
                )
            )
            made = self._version(conn, name, version)
            return made

    # -- helpers --------------------------------------------------------------------------

    def _items(self, conn: Connection, name: str, version: int) -> list[DatasetItem]:
        m, c = self._members, self._contents
        query = (
            sa.select(m.c.item_id, c.c.data)
            .join(c, c.c.content_hash == m.c.content_hash)
            .where(m.c.dataset == name, m.c.version == version)
            .order_by(m.c.position)
        )
        return [_item(row.item_id, row.data) for row in conn.execute(query)]

    def _insert_version(
        self,
        conn: Connection,
        made: DatasetVersion,
        author: str | None,
        items: Sequence[DatasetItem],
        hashes: list[str],
    ) -> None:
        v, d = self._versions, self._datasets
        conn.execute(
            sa.insert(v).values(
                dataset=made.dataset,
                version=made.version,
                content_hash=made.hash,
                item_count=made.item_count,
                created_us=made.created_us,
                message=made.message,
                author=author,
            )
        )
        self._insert_contents(conn, items, hashes)
        rows = [
            {
                "dataset": made.dataset,
                "version": made.version,
                "position": i,
                "item_id": item.id,
                "content_hash": digest,
            }
            for i, (item, digest) in enumerate(zip(items, hashes, strict=True))
        ]
        for start in range(0, len(rows), _CHUNK):
            conn.execute(sa.insert(self._members), rows[start : start + _CHUNK])
        conn.execute(
            sa.update(d).where(d.c.name == made.dataset).values(latest_version=made.version)
        )

    def _insert_contents(
        self, conn: Connection, items: Sequence[DatasetItem], hashes: list[str]
    ) -> None:
        c = self._contents
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        unique = {digest: item.as_json() for item, digest in zip(items, hashes, strict=True)}
        rows = [{"content_hash": k, "data": v} for k, v in unique.items()]
        for start in range(0, len(rows), _CHUNK):
            insert = dialect.insert(c).on_conflict_do_nothing(index_elements=[c.c.content_hash])
            conn.execute(insert, rows[start : start + _CHUNK])

    def _lock_or_create(self, conn: Connection, name: str, project: str, at_us: int) -> int:
        """Lock the dataset's row, creating it (at version 0); its newest version number."""
        d = self._datasets
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        insert = dialect.insert(d).values(
            name=name, project=project, latest_version=0, created_us=at_us
        )
        # a no-op update of an existing row: what locks it against other writers
        upsert = insert.on_conflict_do_update(
            index_elements=[d.c.name], set_={"latest_version": d.c.latest_version}
        ).returning(d.c.latest_version)
        return int(conn.execute(upsert).scalar_one())

    def _latest(self, conn: Connection, name: str) -> int:
        d = self._datasets
        found = conn.execute(sa.select(d.c.latest_version).where(d.c.name == name)).scalar()
        if not found:
            raise _no_dataset(name)
        return int(found)

    def _tagged(self, conn: Connection, name: str, tag: str) -> int:
        t = self._tags
        query = sa.select(t.c.version).where(t.c.dataset == name, t.c.tag == tag)
        found = conn.execute(query).scalar()
        if found is None:
            self._latest(conn, name)  # an unknown dataset says so first
            raise NotFound(f"dataset {name!r} has no tag {tag!r}", param="tag")
        return int(found)

    def _as_of(self, conn: Connection, name: str, at_us: int) -> int:
        v = self._versions
        query = sa.select(sa.func.max(v.c.version)).where(
            v.c.dataset == name, v.c.created_us <= at_us
        )
        found = conn.execute(query).scalar()
        if found is None:
            self._latest(conn, name)
            raise NotFound(f"dataset {name!r} had no version at that time", param="as_of")
        return int(found)

    def _version(self, conn: Connection, name: str, version: int) -> DatasetVersion:
        v, d = self._versions, self._datasets
        query = (
            sa.select(v, d.c.project)
            .join(d, d.c.name == v.c.dataset)
            .where(v.c.dataset == name, v.c.version == version)
        )
        row = conn.execute(query).first()
        if row is None:
            self._latest(conn, name)
            raise NotFound(f"dataset {name!r} has no version {version}", param="version")
        return _version_of(row, self._all_tags(conn, name).get((name, version), ()))

    def _all_tags(
        self, conn: Connection, name: str | None = None
    ) -> dict[tuple[str, int], tuple[str, ...]]:
        t = self._tags
        query = sa.select(t.c.dataset, t.c.version, t.c.tag).order_by(t.c.tag)
        if name is not None:
            query = query.where(t.c.dataset == name)
        found: dict[tuple[str, int], tuple[str, ...]] = {}
        for row in conn.execute(query):
            key = (row.dataset, row.version)
            found[key] = (*found.get(key, ()), row.tag)
        return found


def check_item_ids(items: Sequence[DatasetItem]) -> None:
    """InvalidRequest unless every item has an id of its own."""
    seen: set[str] = set()
    for item in items:
        if not item.id:
            raise InvalidRequest("every item needs a non-empty id", param="id")
        if item.id in seen:
            raise InvalidRequest(f"item id {item.id!r} is there twice", param="id")
        seen.add(item.id)


def _version_of(row: Any, tags: tuple[str, ...]) -> DatasetVersion:
    return DatasetVersion(
        row.dataset,
        row.version,
        row.content_hash,
        row.item_count,
        row.created_us,
        tags,
        row.message,
        row.project,
    )


def _item(item_id: str, data: dict[str, Any]) -> DatasetItem:
    return DatasetItem(
        item_id,
        data.get("input"),
        dict(data.get("variables") or {}),
        data.get("expected"),
        dict(data.get("metadata") or {}),
    )


def _no_dataset(name: str) -> NotFound:
    return NotFound(f"no dataset {name!r}", param="name")
