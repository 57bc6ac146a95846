"""How close the answer is to the expected text: edit distance, fuzzy ratios, and the cosine
of their embeddings (through the gateway, so every embedding call is traced).

These are numeric scorers: the value is the similarity, and `passed` is set only when
the scorer is given a threshold.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from rapidfuzz import fuzz, utils
from rapidfuzz.distance import Levenshtein as EditDistance

from controltower.evals.checks_base import (
    Check,
    Options,
    Unscorable,
    ValueOf,
    as_text,
    cut,
    is_number,
    quoted,
)
from controltower.evals.scoring import Sample, ScoreKind, Scorer, ScorerContext, Verdict

# Each comparison runs on at most this much of each text, so that one huge answer costs
# well under a millisecond (edit distance is quadratic in the worst case).
MAX_EDIT_CHARS = 2_000
MAX_FUZZY_CHARS = 2_000
MAX_PARTIAL_CHARS = 100  # of the shorter text, for `method: partial`
MAX_EMBED_CHARS = 32_000
MAX_CACHED_VECTORS = 4_096

FuzzyRatio = Callable[..., float]
METHODS: dict[str, FuzzyRatio] = {
    "ratio": fuzz.ratio,
    "partial": fuzz.partial_ratio,
    "token-sort": fuzz.token_sort_ratio,
    "token-set": fuzz.token_set_ratio,
}


def _text_like(value: Any) -> bool:
    return isinstance(value, str) or is_number(value)


def _expected_text(expected: ValueOf, sample: Sample) -> str:
    value = expected(sample)
    if isinstance(value, dict | list):
        raise Unscorable(f"needs an expected text, not {quoted(value)}")
    return as_text(value)


def _clipped(text: str, limit: int, details: dict[str, Any]) -> str:
    if len(text) > limit:
        details["truncated"] = True
        return text[:limit]
    return text


class Similarity(Check):
    """A numeric check: `passed` only when it has a threshold."""

    kind: ScoreKind = "numeric"

    def __init__(self, name: str, expected: ValueOf) -> None:
        super().__init__(name)
        self._expected = expected


# --- levenshtein ---------------------------------------------------------------------------


class Levenshtein(Similarity):
    """1 - edit distance / the longer text's length; passes by `max` distance and `min` value."""

    def __init__(
        self,
        name: str,
        expected: ValueOf,
        limits: tuple[float | None, float | None],
        case: bool,
    ) -> None:
        super().__init__(name, expected)
        self._max, self._min = limits
        self._case = case

    async def check(self, sample: Sample) -> Verdict:
        details: dict[str, Any] = {}
        want = _clipped(_expected_text(self._expected, sample).strip(), MAX_EDIT_CHARS, details)
        got = _clipped(sample.text.strip(), MAX_EDIT_CHARS, details)
        if not self._case:
            got, want = got.casefold(), want.casefold()
        distance = EditDistance.distance(got, want)
        value = 1.0 - distance / max(len(got), len(want), 1)
        details["distance"] = distance
        if self._max is None and self._min is None:
            return Verdict(value, None, details=details)
        passed = (self._max is None or distance <= self._max) and (
            self._min is None or value >= self._min
        )
        reason = None if passed else cut(f"{distance} edits from {quoted(want)}: {quoted(got)}")
        return Verdict(value, passed, reason, details=details)


def levenshtein(config: Any, ctx: ScorerContext) -> Scorer:
    """`levenshtein`: the normalised edit similarity; passes by `max` edits and/or `min` value."""
    opts = Options(config, ("value", "max", "min", "case", "name"), shorthand="value")
    expected = opts.value("value", ctx, _text_like, "a text")
    most = opts.number("max", low=0)
    if most is not None and not most.is_integer():
        opts.add(("max",), f"must be a whole number of edits (got {most:g}); fix: round it")
    limits = (most, opts.number("min", low=0, high=1))
    check = Levenshtein(opts.name("levenshtein"), expected, limits, opts.flag("case", True))
    opts.done()
    return check


# --- similar -------------------------------------------------------------------------------


class Fuzzy(Similarity):
    """A rapidfuzz ratio in 0..1 (lowercased, punctuation dropped unless `normalize: false`)."""

    def __init__(
        self, name: str, expected: ValueOf, method: str, threshold: float | None, normalize: bool
    ) -> None:
        super().__init__(name, expected)
        self._method, self._ratio = method, METHODS[method]
        self._threshold = threshold
        self._processor = utils.default_process if normalize else None

    async def check(self, sample: Sample) -> Verdict:
        details: dict[str, Any] = {}
        want = _clipped(_expected_text(self._expected, sample), MAX_FUZZY_CHARS, details)
        got = _clipped(sample.text, MAX_FUZZY_CHARS, details)
        if self._method == "partial":  # quadratic in the shorter text
            want = _clipped(want, MAX_PARTIAL_CHARS, details)
        value = self._ratio(got, want, processor=self._processor) / 100.0
        if self._threshold is None:
            return Verdict(value, None, details=details)
        passed = value >= self._threshold
        reason = None if passed else cut(f"{value:.2f} < {self._threshold:g} to {quoted(want)}")
        return Verdict(value, passed, reason, details=details)


def similar(config: Any, ctx: ScorerContext) -> Scorer:
    """`similar`: a fuzzy similarity in 0..1 (`method`: ratio, partial, token-sort, token-set)."""
    opts = Options(config, ("value", "threshold", "method", "normalize", "name"), shorthand="value")
    expected = opts.value("value", ctx, _text_like, "a text")
    method = opts.choice("method", tuple(METHODS), "ratio")
    threshold = opts.number("threshold", low=0, high=1)
    normalize = opts.flag("normalize", True)
    check = Fuzzy(opts.name("similar"), expected, method, threshold, normalize)
    opts.done()
    return check


# --- embedding -----------------------------------------------------------------------------


class Embedding(Similarity):
    """The cosine of the answer's and the expected text's embeddings, in -1..1."""

    waits = True

    def __init__(
        self, name: str, expected: ValueOf, model: str, threshold: float | None, ctx: ScorerContext
    ) -> None:
        super().__init__(name, expected)
        self._model, self._threshold, self._ctx = model, threshold, ctx
        # the expected texts repeat across repeats and runs: embed each once
        self._vectors: dict[str, np.ndarray[Any, np.dtype[np.float64]]] = {}

    async def check(self, sample: Sample) -> Verdict:
        details: dict[str, Any] = {}
        want = _clipped(_expected_text(self._expected, sample), MAX_EMBED_CHARS, details)
        got = _clipped(sample.text, MAX_EMBED_CHARS, details)
        if not want.strip():
            raise Unscorable("the expected text is empty")
        if not got.strip():  # an empty input is refused by most embedding APIs
            return self._verdict(0.0, "the answer is empty", details)
        answer, expected = await self._embed(got, want)
        value = float(np.clip(answer @ expected, -1.0, 1.0))
        return self._verdict(value, cut(f"cosine {value:.3f} to {quoted(want)}"), details)

    def _verdict(self, value: float, reason: str, details: dict[str, Any]) -> Verdict:
        if self._threshold is None:
            return Verdict(value, None, details=details)
        passed = value >= self._threshold
        return Verdict(value, passed, None if passed else reason, details=details)

    async def _embed(self, got: str, want: str) -> tuple[Any, Any]:
        client = self._ctx.client
        if client is None:
            raise Unscorable("no model client to embed with (the eval is not run on a gateway)")
        known = self._vectors.get(want)
        texts = [got] if known is not None else [got, want]
        vectors = await client.embed(self._model, texts)
        if not isinstance(vectors, list) or len(vectors) != len(texts):
            raise Unscorable(f"`{self._model}` returned {_count(vectors)} for {len(texts)} texts")
        unit = [_unit(vector) for vector in vectors]
        if known is None:
            known = unit[1]
            if len(self._vectors) >= MAX_CACHED_VECTORS:
                self._vectors.pop(next(iter(self._vectors)))
            self._vectors[want] = known
        if unit[0].shape != known.shape:
            raise Unscorable(f"the embeddings differ in size ({unit[0].size} and {known.size})")
        return unit[0], known


def _count(vectors: Any) -> str:
    return f"{len(vectors)} vectors" if isinstance(vectors, list) else quoted(vectors, 40)


def _unit(vector: Any) -> np.ndarray[Any, np.dtype[np.float64]]:
    array = np.asarray(vector, dtype=np.float64)
    norm = float(np.linalg.norm(array)) if array.ndim == 1 else 0.0
    if not np.isfinite(norm) or norm == 0.0:
        raise Unscorable("an embedding is empty, zero or not finite")
    return array / norm


def embedding(config: Any, ctx: ScorerContext) -> Scorer:
    """`embedding`: the cosine similarity of the answer and the value, embedded by `model`."""
    opts = Options(config, ("value", "model", "threshold", "name"), shorthand="model")
    expected = opts.value("value", ctx, _text_like, "a text")
    model = opts.text("model", required=True)
    threshold = opts.number("threshold", low=-1, high=1)
    check = Embedding(opts.name("embedding"), expected, model or "", threshold, ctx)
    opts.done()
    return check
