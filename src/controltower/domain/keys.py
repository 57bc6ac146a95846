"""API keys: what a key may do, in which project, until when; the secret itself is never
kept, only its sha256.

A key is `ct-` and 43 characters of URL-safe base64 (32 random bytes), shown once when it
is made. The store keeps its hash and the first characters (the prefix, shown in lists so
that people can tell their keys apart). Random 256-bit secrets need no slow password hash:
a sha256 of one cannot be reversed or guessed.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from controltower.domain.names import check_label
from controltower.errors import InvalidRequest

Role = Literal["admin", "write", "ingest", "read"]
ROLES: tuple[str, ...] = get_args(Role)
SECRET_PREFIX = "ct-"
SHOWN_CHARS = 10  # of the secret, kept as the key's prefix: `ct-` and 7 more
MAX_KEY_NAME = 100
_SECRET = re.compile(r"ct-[A-Za-z0-9_-]{43}")
_DURATION = re.compile(r"(\d{1,6})([mhdw])")
_UNIT_US = {"m": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000, "w": 604_800_000_000}


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as stored: everything but the secret.

    `role`: `admin` manages keys and the project; `write` calls the gateway and writes
    (traces, prompts, datasets, scores); `ingest` only sends traces; `read` only reads.
    `models` limits the gateway calls to those aliases (empty: every one).
    """

    id: str
    project: str
    prefix: str
    role: Role
    created_us: int
    version: int  # the store's change counter when the key last changed (see KeyRing)
    name: str | None = None
    models: tuple[str, ...] = ()
    expires_us: int | None = None
    revoked_us: int | None = None
    created_by: str | None = None
    last_used_us: int | None = None

    def active(self, now_us: int) -> bool:
        """Whether the key is accepted now: not revoked, not expired."""
        if self.revoked_us is not None:
            return False
        return self.expires_us is None or now_us < self.expires_us

    def allows_model(self, model: str) -> bool:
        """Whether the key may call the gateway with this alias (or prompt reference)."""
        return not self.models or model in self.models


def draft_key(
    project: str,
    *,
    role: str,
    name: str | None,
    models: tuple[str, ...],
    expires_us: int | None,
    created_by: str | None,
    created_us: int,
    version: int,
) -> tuple[ApiKey, str]:
    """A new key (its fields checked) and its secret: what every store keeps, and the
    secret it shows once and keeps only the hash of."""
    secret = new_secret()
    key = ApiKey(
        new_key_id(), check_project(project), secret[:SHOWN_CHARS], check_role(role),
        created_us, version, check_key_name(name), models, expires_us, created_by=created_by,
    )  # fmt: skip
    return key, secret


def with_new_secret(key: ApiKey, version: int) -> tuple[ApiKey, str]:
    """The same key under a new secret (rotation), and that secret."""
    secret = new_secret()
    return replace(key, prefix=secret[:SHOWN_CHARS], version=version), secret


def new_secret() -> str:
    """A new key's secret: `ct-` and 32 random bytes, URL-safe base64."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def secret_hash(secret: str) -> str:
    """The sha256 (hex) a key is found by."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def looks_like_secret(text: str) -> bool:
    """Whether a bearer token has the shape of a controltower key (cheap, before a lookup)."""
    return _SECRET.fullmatch(text) is not None


def new_key_id() -> str:
    """A key's id: `key_` and 16 hex characters (not secret: it names the key in logs)."""
    return f"key_{secrets.token_hex(8)}"


def check_role(role: str) -> Role:
    """The role when it is one of ROLES."""
    if role not in ROLES:
        raise InvalidRequest(f"role must be one of {', '.join(ROLES)}, not {role!r}", param="role")
    return role  # type: ignore[return-value]


def check_project(project: str) -> str:
    """The project name when valid (1-64 lowercase letters, digits, `-`, `_`, `.`)."""
    return check_label(project, "project")


def check_key_name(name: str | None) -> str | None:
    """A key's name (free text for people, at most 100 characters, no line breaks)."""
    if name is None:
        return None
    if len(name) > MAX_KEY_NAME or any(c in name for c in "\r\n\x00"):
        raise InvalidRequest(
            f"a key's name is one line of at most {MAX_KEY_NAME} characters", param="name"
        )
    return name.strip() or None


def expiry_us(text: str | None, now_us: int) -> int | None:
    """When a key made now expires: `30d`, `12h`, `90m`, `2w` from now; None: never."""
    if text is None or text == "":
        return None
    found = _DURATION.fullmatch(text.strip())
    if found is None or int(found.group(1)) == 0:
        raise InvalidRequest(
            f"expires must be a time from now such as 30d, 12h, 90m or 2w, not {text[:40]!r}",
            param="expires",
        )
    return now_us + int(found.group(1)) * _UNIT_US[found.group(2)]


def key_view(key: ApiKey) -> dict[str, Any]:
    """A key as the API, the CLI and the UI show it (never its secret or hash)."""
    return {
        "id": key.id,
        "object": "api_key",
        "project": key.project,
        "name": key.name,
        "prefix": key.prefix,
        "role": key.role,
        "models": list(key.models),
        "created_at": _iso(key.created_us),
        "expires_at": _iso(key.expires_us),
        "revoked_at": _iso(key.revoked_us),
        "last_used_at": _iso(key.last_used_us),
        "created_by": key.created_by,
    }


def _iso(at_us: int | None) -> str | None:
    if at_us is None:
        return None
    at = datetime.fromtimestamp(at_us / 1_000_000, UTC)
    return at.isoformat(timespec="seconds").replace("+00:00", "Z")
