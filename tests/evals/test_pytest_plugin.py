"""The pytest plugin: an inner pytest session runs an eval file over the mock provider,
one test passing and one failing with the items that failed."""

from __future__ import annotations

import pytest

from tests.evals.refund_eval import CONFIG, EVAL

pytest_plugins = ["pytester"]

DATA = """\
{"id": "refund", "input": "How long for a refund?", "expected": "30 days"}
{"id": "shipping", "input": "When does it ship?", "expected": "30 days"}
"""

TESTS = """\
def test_half_of_the_answers_name_the_window(controltower_eval):
    report = controltower_eval("evals/refund.yaml")
    report.assert_passed()
    report.assert_score("contains", ">=", 0.5)


def test_every_answer_names_the_window(controltower_eval):
    controltower_eval("evals/refund.yaml").assert_score("contains", ">=", 0.9)
"""


@pytest.fixture(autouse=True)
def _inner_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")


def test_the_fixture_runs_the_eval_and_a_failure_says_why(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", config=CONFIG)
    evals = pytester.mkdir("tests") / "evals"
    evals.mkdir()
    (evals / "refund.yaml").write_text(EVAL)
    (evals / "data.jsonl").write_text(DATA)
    (pytester.path / "tests" / "test_refund.py").write_text(TESTS)
    url = f"sqlite:///{pytester.path / 'ct.db'}"
    result = pytester.runpytest(
        "--ct-config", str(pytester.path / "config.yaml"), "--ct-database-url", url, "--ct-no-cache"
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*eval 'refund': contains >= 0.9 does not hold:*",
            "*contains = 0.500, expected >= 0.9*",
            "*shipping: contains failed*'No idea.'*",
        ]
    )
    assert (pytester.path / "ct.db").is_file()


def test_the_plugin_is_inert_without_the_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing():\n    assert True\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert not (pytester.path / "controltower.db").exists()


def test_ct_gateway_url_runs_the_eval_over_a_running_gateway(pytester: pytest.Pytester) -> None:
    from tests.conftest import config, running_gateway

    evals = pytester.mkdir("evals")
    (evals / "refund.yaml").write_text(EVAL)
    (evals / "data.jsonl").write_text(DATA)
    pytester.makepyfile(
        test_remote="""
        def test_remote(controltower_eval):
            report = controltower_eval("evals/refund.yaml")
            report.assert_score("contains", "==", 0.5)
            assert report.runs[0].run.record["target"]["resolved"]["gateway"].startswith("http")
            assert all(r.trace_id for r in report.runs[0].results)
        """
    )
    url = f"sqlite:///{pytester.path / 'ct.db'}"
    with running_gateway(config(CONFIG)) as gateway:
        result = pytester.runpytest("--ct-gateway-url", gateway.url, "--ct-database-url", url)
    result.assert_outcomes(passed=1)
