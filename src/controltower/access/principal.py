"""Who is calling, and what a request asks of them.

Every authenticated request has one `Principal`: the administrator (the master key, or
no key on a server that has none), or an API key of one project. A route names the
`Action` it needs; the role decides whether the caller may take it, and the project
scopes what the caller sees and writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from controltower.domain.keys import ApiKey, Role
from controltower.errors import PermissionDenied

Action = Literal["call", "ingest", "read", "write", "admin"]

# what each role may do; an `admin` key manages its own project's keys only
_ALLOWED: dict[str, frozenset[str]] = {
    "admin": frozenset({"call", "ingest", "read", "write", "admin"}),
    "write": frozenset({"call", "ingest", "read", "write"}),
    "ingest": frozenset({"ingest"}),
    "read": frozenset({"read"}),
}
_SAYS = {
    "call": "call the gateway",
    "ingest": "send traces",
    "read": "read",
    "write": "write",
    "admin": "manage API keys",
}


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one request. `project` None: every project (the administrator)."""

    role: Role
    project: str | None = None
    key_id: str | None = None
    models: tuple[str, ...] = ()

    @classmethod
    def of_key(cls, key: ApiKey) -> Principal:
        """The principal an API key authenticates."""
        return cls(key.role, key.project, key.id, key.models)

    @property
    def is_master(self) -> bool:
        """Whether this is the administrator (the master key)."""
        return self.key_id is None

    def may(self, action: Action) -> bool:
        """Whether the caller's role allows `action`."""
        return action in _ALLOWED[self.role]

    def refusal(self, action: Action) -> str | None:
        """Why the caller may not take `action` (None: it may)."""
        if self.may(action):
            return None
        allowed = " or ".join(r for r, acts in _ALLOWED.items() if action in acts)
        return (
            f"This API key's role `{self.role}` cannot {_SAYS[action]}; "
            f"use a key with role {allowed}"
        )

    def allows_model(self, model: str) -> bool:
        """Whether the caller may call the gateway with this alias or prompt reference."""
        return not self.models or model in self.models

    def sees(self, project: str) -> bool:
        """Whether the caller may see and write data of `project`."""
        return self.project is None or self.project == project

    def scoped(self, asked: str | None) -> str | None:
        """The project a query reads: the key's own (PermissionDenied when another was
        asked for); the administrator's choice (None: every project)."""
        if self.project is None or asked is None or asked == self.project:
            return self.project or asked
        raise PermissionDenied(
            f"This API key belongs to project {self.project!r}, not {asked!r}",
            param="project",
        )


MASTER = Principal("admin")
