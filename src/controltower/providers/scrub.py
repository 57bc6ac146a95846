"""Credentials taken out of what a provider says, before a client or a trace sees it.

A provider's error may echo the request: its `Authorization` or `api-key` header, or the
key itself ("Incorrect API key provided: sk-..."). The gateway relays provider errors to
its clients and stores them in traces, so each message is scrubbed first: of the
deployment's own secrets, and of anything shaped like a credential.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from controltower.errors import APIError

MASK = "***"
_MIN_SECRET = 4  # shorter "secrets" would mask ordinary words
_PATTERNS = (
    # a header or field echo: `Authorization: Bearer x`, `"api-key": "x"`, `api_key=x`
    re.compile(
        r"(?i)\b((?:proxy-)?authorization|x-api-key|x-goog-api-key|api[-_]?key|access[-_]token)"
        r"(\\?[\"']?\s*[:=]\s*\\?[\"']?)(?:(?:bearer|basic|token)\s+)?[^\s\"'\\,;&}]+"
    ),
    re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"\b(sk-)[A-Za-z0-9_-]{6,}"),  # OpenAI, Anthropic and look-alike keys
)
_SECRET_HEADER = re.compile(r"(?i)auth|key|token|secret")


class Scrubber:
    """Masks the given secrets, and credential-shaped text, in messages."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        found = {s for s in secrets if s and len(s) >= _MIN_SECRET}
        self._secrets = sorted(found, key=len, reverse=True)  # the longest first

    @classmethod
    def for_credentials(cls, api_key: str | None, headers: Mapping[str, str]) -> Scrubber:
        """A scrubber of a deployment's key and of its headers that look like credentials."""
        values = [v for k, v in headers.items() if _SECRET_HEADER.search(k)]
        return cls([api_key, *values])

    def text(self, text: str) -> str:
        """The text with every secret and credential-shaped part masked."""
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        for i, pattern in enumerate(_PATTERNS):
            text = pattern.sub(_keep_groups(i), text)
        return text

    def error(self, error: APIError) -> APIError:
        """The same error, its message scrubbed (in place, so every holder sees it)."""
        clean = self.text(error.message)
        if clean != error.message:
            error.message = clean
            error.args = (clean,)
        return error


def _keep_groups(index: int) -> str:
    return r"\1\2" + MASK if index == 0 else r"\1" + MASK
