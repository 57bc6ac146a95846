"""The API form of prompts, labels, moves, audit events, metrics and renders (shared by the
REST API and the web UI, as `serialize` is for traces)."""

from __future__ import annotations

from typing import Any

from controltower.domain.prompt import AuditEvent, LabelMove, PromptLabel, PromptVersion
from controltower.prompts.content import content_to_dict
from controltower.prompts.metrics import VersionMetrics
from controltower.prompts.render import RenderedPrompt
from controltower.store.serialize import us_to_iso, us_to_ms


def version_to_api(version: PromptVersion, *, source: bool = True) -> dict[str, Any]:
    """The API form of a version: identity, commit data and content (and source)."""
    out: dict[str, Any] = {
        "name": version.name,
        "version": version.version,
        "content_hash": version.content_hash,
        "created_time": us_to_iso(version.created_us),
        "message": version.message,
        "author": version.author,
        **content_to_dict(version.content),
    }
    if source:
        out["source"] = version.source
    return out


def label_to_api(label: PromptLabel) -> dict[str, Any]:
    """The API form of a label."""
    return {
        "label": label.label,
        "version": label.version,
        "protected": label.protected,
        "split": [{"version": a.version, "weight": a.weight} for a in label.split],
        "updated_time": us_to_iso(label.updated_us) if label.updated_us else None,
    }


def move_to_api(move: LabelMove) -> dict[str, Any]:
    """The API form of a label move."""
    return {
        "prompt": move.prompt,
        "label": move.label,
        "action": move.action,
        "version": move.version,
        "previous_version": move.previous_version,
        "split": [{"version": a.version, "weight": a.weight} for a in move.split],
        "actor": move.actor,
        "time": us_to_iso(move.at_us),
    }


def event_to_api(event: AuditEvent) -> dict[str, Any]:
    """The API form of an audit event."""
    return {
        "id": event.id,
        "time": us_to_iso(event.at_us),
        "actor": event.actor,
        "action": event.action,
        "target": event.target,
        "before": event.before,
        "after": event.after,
    }


def metrics_to_api(metrics: VersionMetrics, labels: list[str]) -> dict[str, Any]:
    """The API form of one version's metrics (latencies in milliseconds)."""
    return {
        "version": metrics.version,
        "labels": labels,
        "requests": metrics.requests,
        "errors": metrics.errors,
        "error_rate": metrics.error_rate,
        "latency_p50_ms": us_to_ms(metrics.latency_p50_us),
        "latency_p95_ms": us_to_ms(metrics.latency_p95_us),
        "input_tokens": metrics.input_tokens,
        "output_tokens": metrics.output_tokens,
        "cost": metrics.cost,
        "user_scores": {
            name: {"mean": score.mean, "count": score.count}
            for name, score in sorted(metrics.user_scores.items())
        },
    }


def rendered_to_api(rendered: RenderedPrompt) -> dict[str, Any]:
    """The API form of a rendered version: messages or text, model and parameters."""
    out: dict[str, Any] = {"name": rendered.name, "version": rendered.version}
    if rendered.messages is not None:
        out["messages"] = list(rendered.messages)
    else:
        out["text"] = rendered.text
    return {**out, "model": rendered.model, "params": rendered.params}
