"""The SQL prompt store: immutable versions, movable labels with history, and the audit log.

Every operation is one transaction. A write first locks its prompt's row (PostgreSQL: a row
lock through a no-op update; SQLite: that write takes the database's write lock), so two
pushes of one prompt never read the same newest version, and (name, version) is unique.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from controltower.domain.ids import now_us
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
    content_from_dict,
    content_hash,
    content_to_dict,
    split_primary,
)
from controltower.prompts.errors import ProtectedLabel
from controltower.store.schema import store_tables

MAX_AUDIT_LIMIT = 1000
MARKER_WINDOW = 64  # ids a late-committing concurrent change may hold
State = dict[str, Any]


class SqlPromptStore:
    """The PromptStore on SQLite or PostgreSQL; returns domain objects."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        tables = store_tables()
        self._prompts = tables["prompts"]
        self._versions = tables["prompt_versions"]
        self._labels = tables["prompt_labels"]
        self._moves = tables["prompt_label_moves"]
        self._audit = tables["audit_events"]

    @property
    def engine(self) -> Engine:
        """The engine the store runs on."""
        return self._engine

    def close(self) -> None:
        """Close the engine's pooled connections."""
        self._engine.dispose()

    def forget_after_fork(self) -> None:
        """In a forked child: drop the parent's pooled connections without closing them."""
        self._engine.dispose(close=False)

    # -- versions -----------------------------------------------------------------------

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
        digest, at_us = content_hash(content), now_us()
        with self._engine.begin() as conn:
            latest = self._lock_or_create(conn, name, at_us)
            if latest:
                newest = self._version(conn, name, latest)
                if newest.content_hash == digest:
                    return newest, False
            made = PromptVersion(name, latest + 1, content, digest, at_us, message, author, source)
            conn.execute(sa.insert(self._versions).values(_version_row(made)))
            p = self._prompts
            conn.execute(sa.update(p).where(p.c.name == name).values(latest_version=made.version))
            before = {"version": latest} if latest else None
            after = {"version": made.version, "content_hash": digest}
            self._record(conn, "prompt.create_version", name, author, before, after, at_us)
        return made, True

    def get_version(
        self, name: str, *, version: int | None = None, label: str | None = None
    ) -> PromptVersion:
        """A version by number, or the one a label points at (`latest` by default)."""
        if version is not None and label is not None:
            raise InvalidRequest("ask for a version or a label, not both", param="version")
        with self._engine.connect() as conn:
            if version is None:
                version = self._label_version(conn, name, label or LATEST)
            return self._version(conn, name, version)

    def list_prompts(self) -> list[tuple[PromptVersion, list[PromptLabel]]]:
        """Every prompt's newest version with its labels, by name."""
        p, v = self._prompts, self._versions
        query = (
            sa.select(v)
            .join(p, sa.and_(p.c.name == v.c.name, p.c.latest_version == v.c.version))
            .order_by(v.c.name)
        )
        with self._engine.connect() as conn:
            newest = [_version_of(row) for row in conn.execute(query)]
            stored = conn.execute(sa.select(self._labels).order_by(self._labels.c.label))
            by_prompt: dict[str, list[PromptLabel]] = {}
            for row in stored:
                by_prompt.setdefault(row.prompt, []).append(_label_of(row))
        return [(made, _with_latest(made, by_prompt.get(made.name, []))) for made in newest]

    def list_versions(self, name: str) -> list[PromptVersion]:
        """A prompt's versions, newest first."""
        v = self._versions
        query = sa.select(v).where(v.c.name == name).order_by(v.c.version.desc())
        with self._engine.connect() as conn:
            found = [_version_of(row) for row in conn.execute(query)]
        if not found:
            raise _no_prompt(name)
        return found

    # -- labels -------------------------------------------------------------------------

    def labels(self, name: str) -> list[PromptLabel]:
        """A prompt's labels (with `latest`), by label name."""
        with self._engine.connect() as conn:
            latest = self._latest(conn, name)
            newest = self._version(conn, name, latest)
            return _with_latest(newest, self._stored_labels(conn, name))

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
        at_us = now_us()
        with self._engine.begin() as conn:
            self._lock(conn, name)
            self._version(conn, name, version)  # it must exist
            old = self._label(conn, name, label)
            moves = old is None or old.version != version or bool(old.split)
            unprotects = old is not None and old.protected and protect is False
            if old is not None and old.protected and (moves or unprotects) and not force:
                raise _protected(name, label)
            protected = (old.protected if old else False) if protect is None else protect
            new = PromptLabel(name, label, version, protected, (), at_us)
            target = f"{name}@{label}"
            if moves:
                move = self._move(conn, old, new, "create" if old is None else "move", actor)
                self._record(conn, "label.move", target, actor, _state(old), _state(new), at_us)
            else:
                move = self._history(conn, name, label, limit=1)[0]
            if old is not None and old.protected != protected:
                if not moves:
                    self._write_label(conn, replace(old, protected=protected))
                before, after = {"protected": old.protected}, {"protected": protected}
                self._record(conn, "label.protect", target, actor, before, after, at_us)
        return move

    def split_label(
        self, name: str, label: str, arms: list[SplitArm], *, actor: str | None, force: bool = False
    ) -> LabelMove:
        """Make a label split traffic between versions by weight."""
        check_label_name(label)
        split = check_split(arms)
        at_us = now_us()
        with self._engine.begin() as conn:
            self._lock(conn, name)
            for arm in split:
                self._version(conn, name, arm.version)
            old = self._label(conn, name, label)
            if old is not None and old.protected and not force:
                raise _protected(name, label)
            protected = old.protected if old else False
            new = PromptLabel(name, label, split_primary(split), protected, split, at_us)
            move = self._move(conn, old, new, "split", actor)
            target = f"{name}@{label}"
            self._record(conn, "label.split", target, actor, _state(old), _state(new), at_us)
        return move

    def rollback(
        self, name: str, label: str, *, actor: str | None, force: bool = False
    ) -> LabelMove:
        """Move a label back to where it pointed before its last move."""
        check_label_name(label)
        at_us = now_us()
        with self._engine.begin() as conn:
            self._lock(conn, name)
            old = self._label(conn, name, label)
            if old is None:
                raise _no_label(name, label)
            if old.protected and not force:
                raise _protected(name, label)
            previous = self._history(conn, name, label, limit=1)[0].previous_version
            if previous is None:
                raise InvalidRequest(
                    f"label `{label}` of `{name}` has no earlier version to roll back to",
                    param="label",
                )
            new = replace(old, version=previous, split=(), updated_us=at_us)
            move = self._move(conn, old, new, "rollback", actor)
            target = f"{name}@{label}"
            self._record(conn, "label.rollback", target, actor, _state(old), _state(new), at_us)
        return move

    def label_history(self, name: str, label: str | None = None) -> list[LabelMove]:
        """Moves of a prompt's labels (of one label), newest first."""
        with self._engine.connect() as conn:
            self._latest(conn, name)  # the prompt must exist
            return self._history(conn, name, label)

    # -- audit --------------------------------------------------------------------------

    def audit_events(self, target: str | None = None, limit: int = 100) -> list[AuditEvent]:
        """Audit events, newest first, of one prompt (its labels included) or all."""
        if not 1 <= limit <= MAX_AUDIT_LIMIT:
            raise InvalidRequest(f"limit must be 1 to {MAX_AUDIT_LIMIT}", param="limit")
        a = self._audit
        query = sa.select(a).order_by(a.c.id.desc()).limit(limit)
        if target is not None:
            prefix = a.c.target.startswith(f"{target}@", autoescape=True)
            query = query.where(sa.or_(a.c.target == target, prefix))
        with self._engine.connect() as conn:
            return [_event_of(row) for row in conn.execute(query)]

    def version_marker(self) -> object:
        """A value that changes whenever any prompt, label or split changes (cheap to read)."""
        # Every change writes one audit event in its transaction. The newest id alone could
        # miss a transaction that took a lower id but committed later (PostgreSQL), so the
        # count of the newest ids' range is part of the marker. Both are index lookups.
        a = self._audit
        with self._engine.connect() as conn:
            newest = int(conn.execute(sa.select(sa.func.max(a.c.id))).scalar() or 0)
            recent = sa.select(sa.func.count()).where(a.c.id > newest - MARKER_WINDOW)
            return (newest, int(conn.execute(recent).scalar_one()))

    # -- inside a transaction -----------------------------------------------------------

    def _lock_or_create(self, conn: Connection, name: str, at_us: int) -> int:
        """Lock the prompt's row, creating it (at version 0); its newest version number."""
        p = self._prompts
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        insert = dialect.insert(p).values(name=name, latest_version=0, created_us=at_us)
        # a no-op update of an existing row: what locks it against other writers
        upsert = insert.on_conflict_do_update(
            index_elements=[p.c.name], set_={"latest_version": p.c.latest_version}
        ).returning(p.c.latest_version)
        return int(conn.execute(upsert).scalar_one())

    def _lock(self, conn: Connection, name: str) -> int:
        """Lock an existing prompt's row; its newest version number."""
        p = self._prompts
        update = (
            sa.update(p)
            .where(p.c.name == name)
            .values(latest_version=p.c.latest_version)
            .returning(p.c.latest_version)
        )
        found = conn.execute(update).scalar()
        if found is None:
            raise _no_prompt(name)
        return int(found)

    def _latest(self, conn: Connection, name: str) -> int:
        p = self._prompts
        found = conn.execute(sa.select(p.c.latest_version).where(p.c.name == name)).scalar()
        if found is None:
            raise _no_prompt(name)
        return int(found)

    def _version(self, conn: Connection, name: str, version: int) -> PromptVersion:
        v = self._versions
        query = sa.select(v).where(v.c.name == name, v.c.version == version)
        found = conn.execute(query).first()
        if found is None:
            self._latest(conn, name)  # an unknown prompt says so
            raise NotFound(f"prompt `{name}` has no version {version}", param="version")
        return _version_of(found)

    def _label_version(self, conn: Connection, name: str, label: str) -> int:
        if label == LATEST:
            return self._latest(conn, name)
        found = self._label(conn, name, label)
        if found is None:
            self._latest(conn, name)  # an unknown prompt says so
            raise _no_label(name, label)
        return found.version

    def _label(self, conn: Connection, name: str, label: str) -> PromptLabel | None:
        t = self._labels
        found = conn.execute(sa.select(t).where(t.c.prompt == name, t.c.label == label)).first()
        return None if found is None else _label_of(found)

    def _stored_labels(self, conn: Connection, name: str) -> list[PromptLabel]:
        t = self._labels
        query = sa.select(t).where(t.c.prompt == name).order_by(t.c.label)
        return [_label_of(row) for row in conn.execute(query)]

    def _write_label(self, conn: Connection, label: PromptLabel) -> None:
        t = self._labels
        values = {
            "version": label.version,
            "protected": label.protected,
            "split": _split_to_json(label.split),
            "updated_us": label.updated_us,
        }
        where = sa.and_(t.c.prompt == label.prompt, t.c.label == label.label)
        if conn.execute(sa.update(t).where(where).values(values)).rowcount == 0:
            conn.execute(sa.insert(t).values(prompt=label.prompt, label=label.label, **values))

    def _move(
        self,
        conn: Connection,
        old: PromptLabel | None,
        new: PromptLabel,
        action: LabelAction,
        actor: str | None,
    ) -> LabelMove:
        """Point the label at its new state and keep the move in the history."""
        self._write_label(conn, new)
        previous = None if old is None else old.version
        move = LabelMove(
            new.prompt, new.label, new.version, previous, action, actor, new.updated_us, new.split
        )
        row = {
            "prompt": move.prompt,
            "label": move.label,
            "version": move.version,
            "previous_version": move.previous_version,
            "action": move.action,
            "actor": move.actor,
            "at_us": move.at_us,
            "split": _split_to_json(move.split),
        }
        conn.execute(sa.insert(self._moves).values(row))
        return move

    def _history(
        self, conn: Connection, name: str, label: str | None, limit: int | None = None
    ) -> list[LabelMove]:
        m = self._moves
        query = sa.select(m).where(m.c.prompt == name).order_by(m.c.id.desc()).limit(limit)
        if label is not None:
            query = query.where(m.c.label == label)
        return [_move_of(row) for row in conn.execute(query)]

    def _record(
        self,
        conn: Connection,
        action: str,
        target: str,
        actor: str | None,
        before: State | None,
        after: State | None,
        at_us: int,
    ) -> None:
        row = {
            "at_us": at_us,
            "actor": actor,
            "action": action,
            "target": target,
            "before": before,
            "after": after,
        }
        conn.execute(sa.insert(self._audit).values(row))


def _no_prompt(name: str) -> NotFound:
    return NotFound(f"prompt `{name}` not found", param="name")


def _no_label(name: str, label: str) -> NotFound:
    return NotFound(f"prompt `{name}` has no label `{label}`", param="label")


def _protected(name: str, label: str) -> ProtectedLabel:
    return ProtectedLabel(
        f"label `{label}` of `{name}` is protected; pass force (the CLI's --force) to change it",
        param="label",
    )


def _state(label: PromptLabel | None) -> State | None:
    """A label as the audit log records it before and after a change."""
    if label is None:
        return None
    split = [{"version": a.version, "weight": a.weight} for a in label.split]
    return {"version": label.version, "split": split, "protected": label.protected}


def _with_latest(newest: PromptVersion, stored: list[PromptLabel]) -> list[PromptLabel]:
    latest = PromptLabel(newest.name, LATEST, newest.version, updated_us=newest.created_us)
    return sorted([*stored, latest], key=lambda label: label.label)


def _split_to_json(arms: tuple[SplitArm, ...]) -> list[dict[str, Any]] | None:
    return [{"version": a.version, "weight": a.weight} for a in arms] or None


def _split_of(data: list[dict[str, Any]] | None) -> tuple[SplitArm, ...]:
    return tuple(SplitArm(int(a["version"]), float(a["weight"])) for a in data or ())


def _version_row(made: PromptVersion) -> dict[str, Any]:
    return {
        "name": made.name,
        "version": made.version,
        "content": content_to_dict(made.content),
        "content_hash": made.content_hash,
        "created_us": made.created_us,
        "message": made.message,
        "author": made.author,
        "source": made.source,
    }


def _version_of(row: sa.Row[Any]) -> PromptVersion:
    return PromptVersion(
        name=row.name,
        version=row.version,
        content=content_from_dict(row.content),
        content_hash=row.content_hash,
        created_us=row.created_us,
        message=row.message,
        author=row.author,
        source=row.source,
    )


def _label_of(row: sa.Row[Any]) -> PromptLabel:
    return PromptLabel(
        prompt=row.prompt,
        label=row.label,
        version=row.version,
        protected=bool(row.protected),
        split=_split_of(row.split),
        updated_us=row.updated_us,
    )


def _move_of(row: sa.Row[Any]) -> LabelMove:
    return LabelMove(
        prompt=row.prompt,
        label=row.label,
        version=row.version,
        previous_version=row.previous_version,
        action=row.action,
        actor=row.actor,
        at_us=row.at_us,
        split=_split_of(row.split),
    )


def _event_of(row: sa.Row[Any]) -> AuditEvent:
    return AuditEvent(
        id=str(row.id),
        at_us=row.at_us,
        actor=row.actor,
        action=row.action,
        target=row.target,
        before=row.before,
        after=row.after,
    )
