"""The exact cache's key: a hash of the project, the model alias and the whole request.

Everything the answer depends on is in the key: the messages (system prompt included),
tools and tool choice, response format, sampling parameters, `n`, `seed`, `user`. Only
how the answer is delivered is left out (`stream`, `stream_options`): a streamed answer
can serve a whole one and the other way round. The project comes first, so that no
project can ever read another's answers, whatever its requests hold.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

# how the answer is delivered, not what it says
DELIVERY = frozenset({"stream", "stream_options"})


def cache_key(project: str, alias: str, body: dict[str, Any]) -> str:
    """A hex SHA-256 of (project, alias, the request without its delivery options)."""
    request = {k: v for k, v in body.items() if k not in DELIVERY}
    payload = orjson.dumps([project, alias, request], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(payload).hexdigest()
