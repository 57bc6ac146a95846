"""What each request asks of its caller: the action its path and method need.

The app checks it once per request, before any route runs: a role that does not allow
the action gets 403 in the OpenAI error format. Routes then scope what they read and
write to the caller's project (`Principal.scoped`, `Principal.sees`).

- the gateway's routes (`/v1/chat/completions`, `/v1/embeddings`, `/v1/models`): `call`;
- the ingest routes (`/api/ingest`, OTLP `/v1/traces`): `ingest`;
- `/api/keys`: `admin` (an admin key manages its own project's keys);
- other reads (GET, and rendering a prompt): `read`; other writes: `write`;
- the administrator's alone: the audit log, `/metrics`, changes to prompts (shared by
  every project) and, for now, the web UI's pages (which show every project).
"""

from __future__ import annotations

from controltower.access.principal import Action, Principal
from controltower.errors import PermissionDenied

CALL_PATHS = frozenset(
    {"/v1/chat/completions", "/chat/completions", "/v1/embeddings", "/embeddings"}
    | {"/v1/models", "/models"}
)
INGEST_PATHS = frozenset({"/api/ingest", "/v1/traces"})
_READS = frozenset({"GET", "HEAD", "OPTIONS"})
_MASTER_PATHS = frozenset({"/api/audit", "/metrics"})


def action_of(method: str, path: str) -> Action | None:
    """The action a request needs; None when only the administrator may make it."""
    if path in CALL_PATHS:
        return "call"
    if path in INGEST_PATHS:
        return "ingest"
    if path in _MASTER_PATHS or not path.startswith(("/api/", "/v1/", "/openapi.json")):
        return None
    if path == "/api/keys" or path.startswith("/api/keys/"):
        return "admin"
    if path.startswith("/api/prompts"):
        if method in _READS or path.endswith("/render"):
            return "read"
        return None
    return "read" if method in _READS else "write"


def check_access(principal: Principal, method: str, path: str) -> None:
    """Raise PermissionDenied when the caller may not make this request."""
    if principal.is_master:
        return
    action = action_of(method, path)
    if action is None:
        raise PermissionDenied(
            "Only the administrator (the master key) may do this: the audit log, "
            "/metrics, changes to prompts and the web UI are not open to API keys"
        )
    refusal = principal.refusal(action)
    if refusal is not None:
        raise PermissionDenied(refusal)
