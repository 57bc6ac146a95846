"""A model client that only waits: what the eval runner costs without the gateway under it.

It answers every chat call after the mock's latency with the same reply the mock gives
(the target's text, or the judge's JSON verdict), and records nothing: a run on it
measures the runner itself (scheduling, templates, scorers, judge prompts and parsing,
the call cache, the results written to the store).
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from controltower.evals.scoring import ModelReply

TARGET_REPLY = "Refunds are accepted within 30 days."
JUDGE_REPLY = '{"reasoning": "Correct and polite.", "score": 5}'


class WaitingClient:
    """Implements `ModelClient` by sleeping `latency_s` per call."""

    def __init__(self, latency_s: float, judge_model: str = "judge") -> None:
        self.latency_s = latency_s
        self.judge_model = judge_model
        self.calls = 0
        self._ids = itertools.count()

    async def chat(
        self,
        body: dict[str, Any],
        *,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        model: str | None = None,
    ) -> ModelReply:
        self.calls += 1
        await asyncio.sleep(self.latency_s)
        text = JUDGE_REPLY if body.get("model") == self.judge_model else TARGET_REPLY
        data = {
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
        }
        return ModelReply(data, f"trace-{next(self._ids)}", self.latency_s * 1000, 0.0)

    async def embed(self, model: str, texts: list[str]) -> list[list[float]]:
        await asyncio.sleep(self.latency_s)
        return [[1.0, 0.0] for _ in texts]

    async def resolve(self, model: str) -> dict[str, Any]:
        return {"alias": model, "deployments": [{"provider": "none", "model": model}]}
