"""`ct.get_prompt`: a prompt version from the server (or the local store), cached with a TTL.

The cache answers at once; an entry older than its TTL is still answered, and a background
thread fetches the new one. Jinja2, YAML and SQLAlchemy are imported on the first fetch,
never by `import controltower`.
"""

from __future__ import annotations

import http.client
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import orjson

from controltower.errors import NotFound
from controltower.sdk import runtime

if TYPE_CHECKING:
    from controltower.domain.prompt import PromptLabel, PromptVersion
    from controltower.prompts.render import PromptRenderer
    from controltower.sdk.runtime import SdkConfig
    from controltower.tracing.periodic import PeriodicWorker

log = logging.getLogger("controltower.sdk")

Fallback = str | list[dict[str, Any]] | dict[str, Any]
LATEST = "latest"  # the label asked for when neither label nor version is given
Key = tuple[str, str, str | None, int | None]  # (where from, name, label, version)


class PromptUnavailable(Exception):
    """The server or store could not be reached (a fallback, when given, is used instead)."""


class Prompt:
    """One version of a prompt, ready to render into messages (or text), model and params."""

    __slots__ = ("_version", "is_fallback", "label")

    def __init__(self, version: PromptVersion, label: str | None, is_fallback: bool) -> None:
        self._version = version
        self.label = label
        self.is_fallback = is_fallback  # built from `fallback=`, not fetched

    @property
    def name(self) -> str:
        """The prompt's name."""
        return self._version.name

    @property
    def version(self) -> int | None:
        """The version number; None for a fallback."""
        return None if self.is_fallback else self._version.version

    @property
    def model(self) -> str | None:
        """The model alias the version calls."""
        return self._version.content.model

    @property
    def params(self) -> dict[str, Any]:
        """The version's call parameters (temperature, max_tokens …), a copy."""
        return dict(self._version.content.params)

    @property
    def messages(self) -> tuple[dict[str, Any], ...] | None:
        """The chat message templates (None for a text prompt)."""
        return self._version.content.messages

    @property
    def text(self) -> str | None:
        """The text template (None for a chat prompt)."""
        return self._version.content.text

    def render(self, **variables: Any) -> dict[str, Any]:
        """`{"messages"|"text", "model", "params"}`; PromptRenderError names a bad variable."""
        rendered = _renderer().render(self._version, variables)
        out: dict[str, Any] = {}
        if rendered.messages is not None:
            out["messages"] = [dict(m) for m in rendered.messages]
        else:
            out["text"] = rendered.text
        out["model"] = rendered.model
        out["params"] = rendered.params
        return out

    def __repr__(self) -> str:
        where = "fallback" if self.is_fallback else f"#{self._version.version}"
        label = f"@{self.label}" if self.label else ""
        return f"<Prompt {self.name}{label} {where}>"


@dataclass(slots=True)
class _Entry:
    prompt: Prompt
    expires: float  # time.monotonic() after which a background refresh is started
    label: PromptLabel | None = None  # the label fetched, with its split arms if any


_CACHE: dict[Key, _Entry] = {}
_pending: dict[Key, tuple[SdkConfig, float]] = {}  # stale entries the refresher will fetch
_lock = threading.Lock()
_shared: dict[str, Any] = {}  # "renderer", and "store" (embedded mode) with "store_url"
_refresher: PeriodicWorker | None = None  # made on first need; it restarts after a fork


def get_prompt(
    name: str,
    label: str | None = None,
    version: int | None = None,
    fallback: Fallback | None = None,
    ttl_s: float = 60.0,
    *,
    user_id: str | None = None,
    session_id: str | None = None,
) -> Prompt:
    """A version of a prompt by label (`latest` by default) or number, cached for ttl_s.

    A stale entry is returned at once and refreshed in the background. When nothing is
    cached and the server cannot be reached (or does not know the prompt), `fallback`
    (a prompt file's fields as a dict, a list of messages, or a text template) is used;
    without one, PromptUnavailable or controltower.errors.NotFound is raised.

    A label that splits traffic between versions gives each caller one arm by weight,
    as the gateway does: sticky per `user_id`, else `session_id` (by default those of the
    current trace), else the label's heaviest arm.
    """
    rt = runtime.RUNTIME or runtime.autoinit()
    config = rt.config
    key = (config.url or config.database_url, name, label, version)
    entry = _CACHE.get(key)
    if entry is None:
        _fetch_first(key, config, ttl_s, fallback)
        entry = _CACHE[key]
    elif time.monotonic() > entry.expires:
        _refresh_later(key, config, ttl_s)
    if entry.label is None or not entry.label.split:
        return entry.prompt
    return _split_arm(entry, user_id, session_id, fallback, ttl_s)


def _split_arm(
    entry: _Entry,
    user_id: str | None,
    session_id: str | None,
    fallback: Fallback | None,
    ttl_s: float,
) -> Prompt:
    from controltower.prompts.content import pick_version

    label = entry.label
    assert label is not None
    sticky = _sticky_key(user_id, session_id)
    if sticky is None:
        return entry.prompt  # the heaviest arm, which the label reports
    number = pick_version(label, sticky)
    if number == entry.prompt.version:
        return entry.prompt
    arm = get_prompt(label.prompt, version=number, fallback=fallback, ttl_s=ttl_s)
    return Prompt(arm._version, label.label, arm.is_fallback)


def _sticky_key(user_id: str | None, session_id: str | None) -> str | None:
    from controltower.prompts.content import sticky_key

    if user_id is None and session_id is None:
        fields = _current_trace_fields()
        user_id, session_id = fields.get("user_id"), fields.get("session_id")
    return sticky_key(user_id, session_id)


def clear_cache() -> None:
    """Forget every cached prompt (the next get_prompt fetches again)."""
    _CACHE.clear()


def _current_trace_fields() -> dict[str, Any]:
    # the user and session that ct.update_trace set on the trace running now, if any
    from controltower.sdk.live import CURRENT

    span = CURRENT.get()
    if span is None:
        return {}
    return (span.root or span).trace_fields or {}


def _fetch_first(key: Key, config: SdkConfig, ttl_s: float, fallback: Fallback | None) -> Prompt:
    _, name, label, version = key
    if label is not None and version is not None:
        raise ValueError("give a label or a version, not both")
    shown = label if label is not None or version is not None else LATEST
    found_label: PromptLabel | None = None
    try:
        found, found_label = _fetch(config, name, label, version)
        prompt = Prompt(found, shown, is_fallback=False)
    except (PromptUnavailable, NotFound) as exc:
        if fallback is None:
            raise
        log.warning("prompt %s: %s; using the fallback", name, exc)
        prompt = Prompt(_from_fallback(name, fallback), shown, is_fallback=True)
    _CACHE[key] = _Entry(prompt, time.monotonic() + ttl_s, found_label)
    return prompt


def _refresh_later(key: Key, config: SdkConfig, ttl_s: float) -> None:
    with _lock:
        if key in _pending:
            return
        _pending[key] = (config, ttl_s)
    _worker().wake()


def _worker() -> PeriodicWorker:
    """The one background thread that refreshes stale entries (and resets after a fork)."""
    global _refresher
    if _refresher is None:
        from controltower.tracing.periodic import PeriodicWorker

        _refresher = PeriodicWorker(
            _refresh_pending, 60.0, name="controltower-prompt", after_fork=_after_fork_in_child
        )
        _refresher.start()
    return _refresher


def _refresh_pending() -> None:
    with _lock:
        due = list(_pending.items())
    for key, (config, ttl_s) in due:
        try:
            _refresh(key, config, ttl_s)
        finally:
            with _lock:
                _pending.pop(key, None)


def _refresh(key: Key, config: SdkConfig, ttl_s: float) -> None:
    _, name, label, version = key
    shown = label if label is not None or version is not None else LATEST
    try:
        version_found, label_found = _fetch(config, name, label, version)
        found = Prompt(version_found, shown, is_fallback=False)
    except Exception as exc:  # keep serving what is cached; try again after another TTL
        log.warning("prompt %s: refresh failed (%s); keeping the cached version", name, exc)
        entry = _CACHE.get(key)
        if entry is not None:
            entry.expires = time.monotonic() + ttl_s
    else:
        _CACHE[key] = _Entry(found, time.monotonic() + ttl_s, label_found)


def _fetch(
    config: SdkConfig, name: str, label: str | None, version: int | None
) -> tuple[PromptVersion, PromptLabel | None]:
    """A version, and the label it was found by (with its split arms), if any."""
    if config.url:
        return _fetch_http(config, name, label, version)
    return _fetch_local(config, name, label, version)


def _fetch_http(
    config: SdkConfig, name: str, label: str | None, version: int | None
) -> tuple[PromptVersion, PromptLabel | None]:
    from controltower import __version__
    from controltower.prompts.content import content_from_dict

    assert config.url is not None
    parts = urlsplit(config.url)
    where = f"versions/{version}" if version is not None else f"labels/{quote(label or 'latest')}"
    path = f"{parts.path.rstrip('/')}/api/prompts/{quote(name, safe='/')}/{where}"
    headers = {"User-Agent": f"controltower-python/{__version__}"}
    if config.api_key:
        headers["Authorization"] = f"Bearer {config.api_key}"
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = kind(parts.hostname or "", parts.port, timeout=config.timeout_s)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        status, data = response.status, response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise PromptUnavailable(f"{config.url} cannot be reached: {exc}") from exc
    finally:
        conn.close()
    if status == 404:
        raise NotFound(_error_message(data) or f"no prompt {name!r}", param="name")
    if status != 200:
        raise PromptUnavailable(f"HTTP {status} from {config.url}: {_error_message(data)}")
    answer = orjson.loads(data)
    if version is not None:
        return _version(name, answer, content_from_dict(answer)), None
    found = answer["version"]
    return _version(name, found, content_from_dict(found)), _label(name, answer["label"])


def _fetch_local(
    config: SdkConfig, name: str, label: str | None, version: int | None
) -> tuple[PromptVersion, PromptLabel | None]:
    with _lock:
        store = _shared.get("store")
        if store is None or _shared.get("store_url") != config.database_url:
            from controltower.store import open_prompt_store

            try:
                store = open_prompt_store(config.database_url)
            except Exception as exc:
                raise PromptUnavailable(f"the local store cannot be opened: {exc}") from exc
            _shared["store"], _shared["store_url"] = store, config.database_url
    _worker()  # its fork handling lets a forked child open connections of its own
    try:
        found: PromptVersion = store.get_version(name, version=version, label=label)
        labels = [] if version is not None else store.labels(name)
    except NotFound:
        raise
    except Exception as exc:  # a locked or vanished database file
        raise PromptUnavailable(f"reading the local store failed: {exc}") from exc
    wanted = label or LATEST
    return found, next((lb for lb in labels if lb.label == wanted), None)


def _label(name: str, data: dict[str, Any]) -> PromptLabel:
    from controltower.domain.prompt import PromptLabel, SplitArm

    arms = tuple(SplitArm(int(a["version"]), float(a["weight"])) for a in data.get("split") or ())
    return PromptLabel(name, str(data["label"]), int(data["version"]), split=arms)


def _version(name: str, data: dict[str, Any], content: Any) -> PromptVersion:
    from controltower.domain.prompt import PromptVersion

    return PromptVersion(
        name=name,
        version=int(data["version"]),
        content=content,
        content_hash=str(data.get("content_hash", "")),
        created_us=0,
        message=data.get("message"),
        author=data.get("author"),
    )


def _from_fallback(name: str, fallback: Fallback) -> PromptVersion:
    from controltower.prompts.content import content_hash
    from controltower.prompts.files import parse_prompt

    if isinstance(fallback, str):
        fields: dict[str, Any] = {"text": fallback}
    elif isinstance(fallback, list):
        fields = {"messages": fallback}
    else:
        fields = {key: value for key, value in fallback.items() if key != "name"}
    # checked as a prompt file is: a bad fallback fails loudly, not when it is needed
    text = orjson.dumps({"name": name, **fields}).decode()
    _, content = parse_prompt(text, "fallback", expected_name=name)
    from controltower.domain.prompt import PromptVersion

    return PromptVersion(name, 0, content, content_hash(content), 0)


def _error_message(data: bytes) -> str:
    try:
        answer = orjson.loads(data)
    except orjson.JSONDecodeError:
        return data[:200].decode("utf-8", "replace")
    error = answer.get("error") if isinstance(answer, dict) else None
    return str(error.get("message", "")) if isinstance(error, dict) else ""


def _renderer() -> PromptRenderer:
    found = _shared.get("renderer")
    if found is None:
        from controltower.prompts.render import PromptRenderer

        found = _shared.setdefault("renderer", PromptRenderer())
    return found  # type: ignore[no-any-return]


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # another thread may have held it
    _pending.clear()  # stale entries are queued again when next asked for
    store = _shared.pop("store", None)
    if store is not None:
        store.forget_after_fork()
