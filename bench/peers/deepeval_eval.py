"""The eval runner benchmark's workload written for DeepEval, run by DeepEval's own venv.

    /tmp/peer/deepeval-venv/bin/python bench/peers/deepeval_eval.py \
        DATASET.jsonl BASE_URL TARGET_MODEL JUDGE_MODEL CONCURRENCY OUT.json

DeepEval scores outputs it is given; it does not call a target itself. So, as its
guide has users do, the script first calls the target for every item with the OpenAI
SDK (which DeepEval depends on) at CONCURRENCY in flight, builds one `LLMTestCase` per
item, then scores them with a `GEval` judge through `evaluate(...)` at the same
concurrency. The evaluation steps are given, so GEval makes one judge call per item
and none to write its own steps. OUT.json gets the pass count and each phase's time.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

START = time.perf_counter()

from deepeval import evaluate  # noqa: E402
from deepeval.evaluate.configs import (  # noqa: E402
    AsyncConfig,
    CacheConfig,
    DisplayConfig,
    ErrorConfig,
)
from deepeval.metrics import GEval  # noqa: E402
from deepeval.models import OpenAIModel  # noqa: E402
from deepeval.test_case import LLMTestCase, SingleTurnParams  # noqa: E402
from openai import AsyncOpenAI  # noqa: E402

IMPORTED = time.perf_counter()


async def answers(items: list[dict], base_url: str, model: str, concurrency: int) -> list[str]:
    """The target's answer to every item, CONCURRENCY calls in flight."""
    client = AsyncOpenAI(base_url=base_url, api_key="sk-bench", max_retries=0)
    gate = asyncio.Semaphore(concurrency)

    async def one(item: dict) -> str:
        async with gate:
            reply = await client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": item["input"]}]
            )
        return reply.choices[0].message.content or ""

    try:
        return await asyncio.gather(*(one(item) for item in items))
    finally:
        await client.close()


def main() -> None:
    """Target calls, then DeepEval's judged evaluation; write the counts and times."""
    dataset, base_url, target, judge, concurrency, out = sys.argv[1:7]
    with open(dataset, encoding="utf-8") as file:
        items = [json.loads(line) for line in file]
    began = time.perf_counter()
    outputs = asyncio.run(answers(items, base_url, target, int(concurrency)))
    targets_done = time.perf_counter()
    cases = [
        LLMTestCase(input=item["input"], actual_output=output, expected_output=item["expected"])
        for item, output in zip(items, outputs, strict=True)
    ]
    metric = GEval(
        name="Correctness",
        evaluation_params=[
            SingleTurnParams.INPUT,
            SingleTurnParams.ACTUAL_OUTPUT,
            SingleTurnParams.EXPECTED_OUTPUT,
        ],
        evaluation_steps=["Check that the actual output gives the expected refund window."],
        model=OpenAIModel(model=judge, base_url=base_url, api_key="sk-bench"),
    )
    result = evaluate(
        cases,
        [metric],
        async_config=AsyncConfig(run_async=True, max_concurrent=int(concurrency)),
        display_config=DisplayConfig(show_indicator=False, print_results=False),
        cache_config=CacheConfig(write_cache=False, use_cache=False),
        error_config=ErrorConfig(ignore_errors=False),
    )
    done = time.perf_counter()
    passed = sum(1 for test in result.test_results if test.success)
    report = {
        "items": len(items),
        "passed": passed,
        "failed": len(result.test_results) - passed,
        "import_s": IMPORTED - START,
        "target_s": targets_done - began,
        "evaluate_s": done - targets_done,
    }
    with open(out, "w", encoding="utf-8") as file:
        json.dump(report, file)


if __name__ == "__main__":
    main()
