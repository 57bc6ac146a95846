"""Serve `prompt:` model references from an in-memory snapshot of the prompt store.

The store is read by a background thread only: it polls the store's cheap version marker
and, when it moved, loads every prompt's labels and versions into a new snapshot that
replaces the old one in one assignment. A request reads the snapshot and renders with
templates compiled once, so the database is never on the request path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from controltower.domain.prompt import LATEST, PromptLabel, PromptVersion
from controltower.errors import InvalidRequest, ModelNotFound
from controltower.gateway.caller import Caller
from controltower.prompts import PromptRenderer, PromptStore, RenderedPrompt
from controltower.prompts.content import pick_version, sticky_key, version_number
from controltower.tracing.periodic import PeriodicWorker

log = logging.getLogger("controltower.gateway")

PREFIX = "prompt:"


@dataclass(frozen=True, slots=True)
class PromptUse:
    """Which prompt version served a call, and how it was asked for."""

    reference: str  # the `model` the client sent, e.g. "prompt:refund-policy@production"
    name: str
    version: int
    label: str | None
    variables: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Prompt:
    """One prompt in a snapshot: every version by number, every label by name."""

    versions: dict[int, PromptVersion]
    labels: dict[str, PromptLabel]


class PromptResolver:
    """Turns a body whose `model` is a prompt reference into a plain chat body."""

    def __init__(
        self, store: PromptStore, refresh_s: float = 1.0, renderer: PromptRenderer | None = None
    ) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self._renderer = renderer or PromptRenderer()
        self._prompts: dict[str, _Prompt] = {}
        self._marker: object = None
        self._loaded = False
        self._worker = PeriodicWorker(self._poll_once, refresh_s, name="controltower-prompts")

    # -- the snapshot -------------------------------------------------------------------

    def refresh(self) -> bool:
        """Reload the snapshot if the store changed since the last load; whether it did."""
        # the marker is read first: a change during the load moves it again, so the
        # next poll reloads
        marker = self.store.version_marker()
        if self._loaded and marker == self._marker:
            return False
        self._prompts = self._load(self._prompts)
        self._marker, self._loaded = marker, True
        return True

    def _load(self, old: dict[str, _Prompt]) -> dict[str, _Prompt]:
        loaded: dict[str, _Prompt] = {}
        for newest, labels in self.store.list_prompts():
            known = old.get(newest.name)
            same = known is not None and _same(known.versions.get(newest.version), newest)
            # versions never change: only a prompt with a new newest version is re-read
            versions = known.versions if known is not None and same else None
            if versions is None:
                versions = {v.version: v for v in self.store.list_versions(newest.name)}
            loaded[newest.name] = _Prompt(versions, {label.label: label for label in labels})
        return loaded

    def start(self) -> None:
        """Load once now, then keep refreshing in a background thread."""
        if self._worker.running:
            return
        self._poll_once()
        self._worker.start()

    def stop(self) -> None:
        """Stop refreshing, and the renderer's threads."""
        self._worker.stop(10)
        self._renderer.close()

    def _poll_once(self) -> None:
        try:
            self.refresh()
        except Exception:  # the store may be down: keep serving the snapshot we have
            log.exception("prompt refresh failed; retrying in %.1f s", self.refresh_s)

    def references(self) -> list[str]:
        """Every prompt reference a client may send as `model`: NAME and NAME@LABEL."""
        refs = []
        for name, prompt in sorted(self._prompts.items()):
            refs.append(f"{PREFIX}{name}")
            refs += [
                f"{PREFIX}{name}@{label}" for label in sorted(prompt.labels) if label != LATEST
            ]
        return refs

    # -- the request path ---------------------------------------------------------------

    def resolve(self, body: dict[str, Any], caller: Caller) -> tuple[dict[str, Any], PromptUse]:
        """The body to send (rendered messages, the version's model and params) and the use.

        Renders in the calling thread; on the event loop, use `resolve_async`.
        """
        version, label, variables = self._select(body, caller)
        rendered = self._renderer.render(version, variables)
        return _assemble(body, version, label, variables, rendered)

    async def resolve_async(
        self, body: dict[str, Any], caller: Caller
    ) -> tuple[dict[str, Any], PromptUse]:
        """`resolve`, rendering in the renderer's threads within its time limit."""
        version, label, variables = self._select(body, caller)
        rendered = await self._renderer.render_async(version, variables)
        return _assemble(body, version, label, variables, rendered)

    def _select(
        self, body: dict[str, Any], caller: Caller
    ) -> tuple[PromptVersion, str | None, dict[str, Any]]:
        name, label, number = parse_reference(body["model"])
        version = self._version(name, label, number, body, caller)
        variables = body.get("variables")
        if variables is None:
            variables = {}
        elif not isinstance(variables, dict):
            raise InvalidRequest("`variables` must be a JSON object", param="variables")
        return version, label, variables

    def _version(
        self, name: str, label: str | None, number: int | None, body: dict[str, Any], caller: Caller
    ) -> PromptVersion:
        prompt = self._prompts.get(name)
        if prompt is None:
            raise ModelNotFound(
                f"prompt `{name}` not found (new prompts are served within "
                f"{self.refresh_s:g} s of their push)",
                param="model",
            )
        if number is None:
            found = prompt.labels.get(label or LATEST)
            if found is None:
                raise ModelNotFound(f"prompt `{name}` has no label `{label}`", param="model")
            number = pick_version(found, _sticky_key(body, caller))
        version = prompt.versions.get(number)
        if version is None:
            raise ModelNotFound(f"prompt `{name}` has no version {number}", param="model")
        return version


def _assemble(
    body: dict[str, Any],
    version: PromptVersion,
    label: str | None,
    variables: dict[str, Any],
    rendered: RenderedPrompt,
) -> tuple[dict[str, Any], PromptUse]:
    reference, name = body["model"], version.name
    if rendered.model is None:
        raise InvalidRequest(
            f"prompt `{name}` version {version.version} names no model; set `model` in the prompt",
            param="model",
        )
    if rendered.messages is not None:
        messages = list(rendered.messages)
    else:
        messages = [{"role": "user", "content": rendered.text}]
    extra = body.get("messages")
    if extra:  # the conversation so far follows the prompt's own messages
        messages += extra
    out = {**rendered.params, **body}  # request parameters override the version's
    out.pop("variables", None)
    out["model"] = rendered.model
    out["messages"] = messages
    return out, PromptUse(reference, name, version.version, label, variables)


def parse_reference(reference: str) -> tuple[str, str | None, int | None]:
    """(name, label, version) of `prompt:NAME`, `prompt:NAME@LABEL` or `prompt:NAME#VERSION`."""
    ref = reference[len(PREFIX) :]
    name, at, label = ref.partition("@")
    if at:
        if not name or not label:
            raise _bad_reference(reference)
        return name, label, None
    name, sharp, number = ref.partition("#")
    if not sharp:
        if not name:
            raise _bad_reference(reference)
        return name, None, None
    version = version_number(number)
    if not name or version is None:
        raise _bad_reference(reference)
    return name, None, version


def _bad_reference(reference: str) -> InvalidRequest:
    return InvalidRequest(
        f"invalid prompt reference {reference!r}: use prompt:NAME, prompt:NAME@LABEL "
        "or prompt:NAME#VERSION",
        param="model",
    )


def _sticky_key(body: dict[str, Any], caller: Caller) -> str | None:
    user = caller.user_id or body.get("user")
    return sticky_key(user if isinstance(user, str) else None, caller.session_id)


def _same(known: PromptVersion | None, newest: PromptVersion) -> bool:
    return known is not None and known.content_hash == newest.content_hash
