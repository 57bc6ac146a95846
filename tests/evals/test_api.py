"""`controltower.evals.run`: an eval from Python, its report, its assertions, its exit codes."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

import controltower.evals
from controltower.evals import EvalReport
from controltower.evals.session import EvalRuntime
from controltower.store.memory_evals import InMemoryEvalStore
from tests.evals.refund_eval import CONFIG, EVAL

ITEMS = [
    {"id": "refund", "input": "How long for a refund?", "expected": "30 days"},
    {"id": "shipping", "input": "When does it ship?", "expected": "30 days"},
]


class NoModels:
    """A model client for evals that call no model (a Python target, checks only)."""

    async def chat(self, body: dict[str, Any], **_: Any) -> Any:
        raise AssertionError("no model call expected")

    async def embed(self, model: str, texts: list[str]) -> list[list[float]]:
        raise AssertionError("no model call expected")

    async def resolve(self, model: str) -> dict[str, Any]:
        return {"alias": model}


def answer(question: str) -> str:
    return "Refunds within 30 days." if "refund" in question else "It ships tomorrow."


def _eval(**extra: Any) -> dict[str, Any]:
    return {
        "name": "refund-app",
        "dataset": ITEMS,
        "target": {"python": answer},
        "scorers": [{"contains": "{{ expected }}"}],
        **extra,
    }


def _run(**extra: Any) -> EvalReport:
    runtime = EvalRuntime(NoModels(), InMemoryEvalStore())
    return controltower.evals.run(_eval(**extra), runtime=runtime)


def test_a_dict_eval_with_a_python_callable_passes_without_thresholds() -> None:
    report = _run()
    assert report.exit_code == 0 and report.passed
    report.assert_passed()
    report.assert_score("contains", "==", 0.5)
    assert report.summary[0]["scorers"]["contains"]["passed"] == 1
    record = report.runs[0].run.record
    assert record["target"] == {"kind": "python", "python": f"{__name__}:answer"}


def test_a_missed_threshold_exits_1_and_says_which_items_failed() -> None:
    report = _run(thresholds={"contains": 0.9})
    assert report.exit_code == 1 and not report.passed
    with pytest.raises(AssertionError) as failed:
        report.assert_passed()
    message = str(failed.value)
    assert "eval 'refund-app' failed its gate (exit 1)" in message
    assert "contains scored 0.500, below its threshold 0.9" in message
    assert "shipping: contains failed" in message and "'It ships tomorrow.'" in message
    assert "refund:" not in message.split("failed items:")[1]


def test_assert_score_names_the_mean_and_the_failed_items() -> None:
    report = _run()
    report.assert_score("contains", ">=", 0.5)
    with pytest.raises(AssertionError) as failed:
        report.assert_score("contains", ">=", 0.8)
    assert "contains = 0.500, expected >= 0.8" in str(failed.value)
    assert "shipping: contains failed" in str(failed.value)
    with pytest.raises(AssertionError, match="no scorer 'judge'; its scorers: contains"):
        report.assert_score("judge", ">=", 4)
    with pytest.raises(ValueError, match="op '=>'"):
        report.assert_score("contains", "=>", 0.5)


def test_assert_no_regression_needs_a_baseline() -> None:
    with pytest.raises(AssertionError, match="compared with no baseline; pass baseline="):
        _run().assert_no_regression()


def test_a_failing_target_is_an_infrastructure_error() -> None:
    def broken(question: str) -> str:
        raise RuntimeError("the app is down")

    report = controltower.evals.run(
        _eval(target={"python": broken}), runtime=EvalRuntime(NoModels(), InMemoryEvalStore())
    )
    assert report.exit_code == 3
    with pytest.raises(
        AssertionError, match=r"refund: the target failed: .*RuntimeError: the app is down"
    ):
        report.assert_passed()


def test_an_async_callable_target_is_awaited() -> None:
    async def answer_later(question: str) -> str:
        return answer(question)

    report = _run(target={"python": answer_later})
    report.assert_score("contains", "==", 0.5)


def test_fail_on_is_checked_and_none_turns_the_gate_off() -> None:
    with pytest.raises(ValueError, match="fail_on: typo"):
        controltower.evals.run(
            _eval(), fail_on=["typo"], runtime=EvalRuntime(NoModels(), InMemoryEvalStore())
        )
    report = controltower.evals.run(
        _eval(thresholds={"contains": 0.9}),
        fail_on=(),
        runtime=EvalRuntime(NoModels(), InMemoryEvalStore()),
    )
    assert report.exit_code == 0


async def test_run_refuses_an_event_loop_and_names_arun() -> None:
    with pytest.raises(RuntimeError, match=r"controltower\.evals\.arun"):
        controltower.evals.run(_eval())
    report = await controltower.evals.arun(
        _eval(), runtime=EvalRuntime(NoModels(), InMemoryEvalStore())
    )
    assert report.passed


def _files(tmp: Path, items: int) -> Path:
    (tmp / "config.yaml").write_text(CONFIG)
    lines = [
        f'{{"id": "i{n}", "input": "{"refund" if n % 2 else "ship"} {n}?", "expected": "30 days"}}'
        for n in range(items)
    ]
    (tmp / "data.jsonl").write_text("".join(line + "\n" for line in lines))
    (tmp / "refund.yaml").write_text(EVAL)
    return tmp / "refund.yaml"


def test_an_eval_file_over_the_mock_gateway_is_stored_and_compared(tmp_path: Path) -> None:
    spec = _files(tmp_path, 4)
    url = f"sqlite:///{tmp_path / 'ct.db'}"
    first = controltower.evals.run(spec, config=tmp_path / "config.yaml", database_url=url)
    assert first.exit_code == 0 and first.comparisons == [None]
    assert first.summary[0]["scorers"]["contains"]["mean"] == 0.5
    resolved = first.runs[0].run.record["target"]["resolved"]
    assert resolved["deployments"][0]["model"] == "fast-1"
    second = controltower.evals.run(
        "refund.yaml",
        base_dir=tmp_path,
        config=str(tmp_path / "config.yaml"),
        database_url=url,
        baseline="last",
        cache=False,
        repeats=2,
    )
    comparison = second.comparisons[0]
    assert comparison is not None and comparison.baseline.id == first.runs[0].run.id
    second.assert_no_regression()
    assert second.runs[0].run.record["cache"] == "off"
    assert second.runs[0].run.record["repeats"] == 2


def test_an_empty_dataset_exits_4(tmp_path: Path) -> None:
    spec = _files(tmp_path, 0)
    url = f"sqlite:///{tmp_path / 'ct.db'}"
    report = controltower.evals.run(spec, config=tmp_path / "config.yaml", database_url=url)
    assert report.exit_code == 4
    with pytest.raises(AssertionError, match=r"empty: run_\w+: no item"):
        report.assert_passed()


def test_an_invalid_eval_raises_with_every_problem() -> None:
    from controltower.evals.spec import EvalFileError

    with pytest.raises(EvalFileError) as failed:
        controltower.evals.run({"name": "x", "dataset": ITEMS, "target": {"python": 3}})
    assert "scorers" in str(failed.value) and "python" in str(failed.value)


def test_the_package_names_the_api() -> None:
    assert set(controltower.evals.__all__) == {"EvalReport", "arun", "run"}
    assert textwrap.dedent(controltower.evals.run.__doc__ or "").startswith("Run an eval file")


def test_a_label_baseline_without_a_prompt_target_is_a_warning() -> None:
    report = controltower.evals.run(
        _eval(), baseline="production", runtime=EvalRuntime(NoModels(), InMemoryEvalStore())
    )
    assert report.comparisons == [None]
    assert report.warnings == ["--baseline production: a label or version needs a prompt target"]


def test_a_regression_names_the_scorer_and_the_items_that_got_worse() -> None:
    runtime = EvalRuntime(NoModels(), InMemoryEvalStore())
    items = [{"id": f"r{n}", "input": f"refund {n}?", "expected": "30 days"} for n in range(8)]
    before = controltower.evals.run(_eval(dataset=items), runtime=runtime)
    assert before.passed
    after = controltower.evals.run(
        _eval(dataset=items, target={"python": lambda q: "No idea."}),
        runtime=runtime,
        baseline="last",
    )
    assert after.exit_code == 1
    with pytest.raises(AssertionError) as failed:
        after.assert_no_regression()
    message = str(failed.value)
    assert "regressed against its baseline" in message
    assert "contains: 1.00 -> 0.00" in message and "regressed" in message
    assert "r0: 1.00 -> 0.00" in message and "'No idea.'" in message


def test_gateway_url_sends_the_model_calls_to_a_running_gateway(tmp_path: Path) -> None:
    from tests.conftest import config, running_gateway

    spec = _files(tmp_path, 4)
    with running_gateway(config(CONFIG)) as gateway:
        report = controltower.evals.run(
            spec, gateway_url=gateway.url, database_url=f"sqlite:///{tmp_path / 'ct.db'}"
        )
        report.assert_score("contains", "==", 0.5)
        run = report.runs[0]
        assert run.run.record["target"]["resolved"] == {"alias": "fast", "gateway": gateway.url}
        for result in run.results:
            assert result.trace_id is not None
            trace = gateway.trace(result.trace_id)
            assert "eval:refund" in trace["tags"]
