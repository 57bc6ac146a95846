"""Dataset items out: JSONL in our format, OpenAI Evals samples, and OpenAI chat fine-tuning
lines. `dataset_files` reads what `jsonl` and `openai-evals` write back."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import orjson

from controltower.domain.dataset import DatasetItem

EXPORT_FORMATS = ("jsonl", "openai-evals", "openai-chat")


def dump_jsonl(items: Iterable[DatasetItem], fmt: str = "jsonl") -> tuple[bytes, int]:
    """The items as one JSON line each in `fmt` (see `EXPORT_FORMATS`), and how many were skipped.

    - `jsonl`: our records (`DatasetItem.as_json`); nothing is skipped.
    - `openai-evals`: `{"input": ..., "ideal": ...}` samples. `ideal` is the whole list kept in
      `metadata.ideal` when it starts with `expected` (an OpenAI Evals import), else `expected`,
      and is left out when there is no expected answer. Items without an `input` (only template
      `variables`) are skipped: a sample needs the prompt itself. Ids are not written.
    - `openai-chat`: `{"messages": [...input messages, {"role": "assistant", "content": expected}]}`
      for chat fine-tuning. A text input becomes one user message; an expected answer that is
      not text is written as its JSON. Items without an expected answer, or whose input is not
      text or messages, are skipped.
    """
    encode = _ENCODERS.get(fmt)
    if encode is None:
        raise ValueError(f"unknown export format {fmt!r}: use one of {', '.join(EXPORT_FORMATS)}")
    out = bytearray()
    skipped = 0
    for item in items:
        record = encode(item)
        if record is None:
            skipped += 1
            continue
        out += orjson.dumps(record)
        out += b"\n"
    return bytes(out), skipped


def _evals_sample(item: DatasetItem) -> dict[str, Any] | None:
    if item.input is None:
        return None
    sample: dict[str, Any] = {"input": item.input}
    ideal = item.metadata.get("ideal")
    if isinstance(ideal, list) and ideal and ideal[0] == item.expected:
        sample["ideal"] = ideal
    elif item.expected is not None:
        sample["ideal"] = item.expected
    return sample


def _chat_example(item: DatasetItem) -> dict[str, Any] | None:
    if item.expected is None:
        return None
    if isinstance(item.input, str):
        messages: list[Any] = [{"role": "user", "content": item.input}]
    elif isinstance(item.input, list):
        messages = list(item.input)
    else:  # template variables or a structured input: there is no prompt to train on
        return None
    expected = item.expected
    answer = expected if isinstance(expected, str) else orjson.dumps(expected).decode()
    return {"messages": [*messages, {"role": "assistant", "content": answer}]}


_ENCODERS: dict[str, Callable[[DatasetItem], dict[str, Any] | None]] = {
    "jsonl": DatasetItem.as_json,
    "openai-evals": _evals_sample,
    "openai-chat": _chat_example,
}
