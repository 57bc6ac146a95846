"""check_config: every problem in one pass, by line, in plain words, without secrets."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from controltower.settings import (
    ConfigReport,
    Settings,
    check_config,
    check_settings,
    load_settings,
    mask_url,
)

KNOWN = {"openai", "anthropic", "mock"}

MANY_MISTAKES = """\
models:
  - name: chat
    fallbacks: [bakup]
    retries: many
    deployments:
      - provider: opneai
        model: gpt-4o-mini
        wieght: 2
        timeout_s: 0
  - name: chat
    strategy: round-robin
    deployments: []
databse_url: sqlite:///x.db
trace_queue_size: lots
"""


def check(text: str, environ: dict[str, str] | None = None) -> ConfigReport:
    return check_settings(text, "c.yaml", known_providers=KNOWN, environ=environ or {})


def line_of(problem: str) -> int:
    match = re.match(r"c\.yaml:(\d+) ", problem)
    assert match is not None, problem
    return int(match.group(1))


# --- an empty master key is no key ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "environ"),
    [
        ('master_key: ""\n', {}),
        ("master_key: '   '\n", {}),
        ("master_key: ${MASTER:-}\n", {}),
        ("master_key: ${MASTER}\n", {"MASTER": ""}),
        ("master_key:\n", {}),
    ],
    ids=["quoted", "blank", "default", "empty-variable", "no-value"],
)
def test_an_empty_master_key_counts_as_none_and_is_reported(
    text: str, environ: dict[str, str]
) -> None:
    report = check(text, environ)
    assert report.problems == []
    assert report.settings is not None and report.settings.master_key is None
    [warning] = report.warnings
    assert warning.startswith("c.yaml:1 master_key: is empty, which counts as no master key")
    assert "refuses to listen beyond loopback" in warning


def test_an_empty_master_key_variable_gives_no_key() -> None:
    report = check("models: []\n", {"CONTROLTOWER_MASTER_KEY": ""})
    assert report.settings is not None and report.settings.master_key is None
    assert any("CONTROLTOWER_MASTER_KEY is set but empty" in w for w in report.warnings)
    # nor does it wipe out the file's key
    kept = check("master_key: sk-file\n", {"CONTROLTOWER_MASTER_KEY": ""}).settings
    assert kept is not None and kept.master_key is not None
    assert kept.master_key.get_secret_value() == "sk-file"


def test_settings_built_in_code_drop_an_empty_key() -> None:
    assert Settings(master_key=SecretStr("")).master_key is None
    assert Settings(master_key=SecretStr("k")).master_key == SecretStr("k")


# --- every problem in one pass, by line ---------------------------------------------------------


def test_every_problem_is_reported_in_one_pass_sorted_by_line() -> None:
    report = check(MANY_MISTAKES)
    assert report.settings is None
    lines = [line_of(p) for p in report.problems]
    assert lines == sorted(lines)
    assert lines == [3, 4, 6, 8, 9, 10, 11, 12, 13, 14], report.problems
    text = "\n".join(report.problems)
    assert "unknown model 'bakup'; fix: declare it under models" in text  # a cross-field check
    assert "unknown provider 'opneai'; fix: did you mean `openai`?" in text
    assert "duplicate model name 'chat'" in text


def test_problems_are_in_plain_words() -> None:
    report = check(MANY_MISTAKES + "backoff_base_s: soon\nretention: {days: [1]}\n")
    for problem in report.problems:
        assert "Input should be" not in problem and "Extra inputs" not in problem, problem
        assert "; fix: " in problem
    by_field = {p.split(": ", 1)[0].split(" ", 1)[1]: p for p in report.problems}
    assert "must be a whole number (got 'many')" in by_field["models[0].retries"]
    assert "must be greater than 0 (got 0)" in by_field["models[0].deployments[0].timeout_s"]
    assert "needs at least 1 entry (got an empty list)" in by_field["models[1].deployments"]
    assert (
        "must be one of 'weighted', 'least-latency' or 'least-busy'"
        in (by_field["models[1].strategy"])
    )
    assert "must be a number (got 'soon')" in by_field["backoff_base_s"]
    assert "must be a whole number (got a list)" in by_field["retention.days"]


@pytest.mark.parametrize(
    ("text", "field", "fix"),
    [
        ("databse_url: x\n", "databse_url", "did you mean `database_url`?"),
        ("modles: []\n", "modles", "did you mean `models`?"),
        ("retention: {dayz: 3}\n", "retention.dayz", "did you mean `days`?"),
        (
            "models: [{name: a, stratgy: weighted, deployments: [{provider: mock, model: m}]}]\n",
            "models[0].stratgy",
            "did you mean `strategy`?",
        ),
        (
            "models: [{name: a, deployments: [{provider: mock, model: m,"
            " mock: {faliure: 500}}]}]\n",
            "models[0].deployments[0].mock.faliure",
            "did you mean `failure`?",
        ),
    ],
)
def test_a_misspelt_key_gets_a_did_you_mean(text: str, field: str, fix: str) -> None:
    [problem] = check(text).problems
    assert problem.startswith(f"c.yaml:1 {field}: unknown field; fix: {fix}")


def test_a_key_like_no_other_lists_the_fields_there() -> None:
    [problem] = check("retention: {colour: red}\n").problems
    assert "remove it, or check its spelling (the fields here: days, projects, interval_s)" in (
        problem
    )


def test_a_scripted_reply_is_text_or_a_tool_call() -> None:
    text = """\
models:
  - name: a
    deployments:
      - provider: mock
        model: m
        mock:
          replies:
            - hello
            - 3
            - {tool: lookup, argument: {}}
"""
    problems = check(text).problems
    assert [p.split(": ", 1)[0] for p in problems] == [
        "c.yaml:9 models[0].deployments[0].mock.replies[1]",
        "c.yaml:10 models[0].deployments[0].mock.replies[2].argument",
    ]
    assert "must be a mapping or text (got 3)" in problems[0]
    assert "did you mean `arguments`?" in problems[1]


def test_failure_accepts_a_status_code_written_as_a_number() -> None:
    # docs/configuration.md lists `500`, `503`, `429`: YAML reads them as integers
    text = "models: [{name: a, deployments: [{provider: mock, model: m, mock: {failure: 503}}]}]"
    report = check(text)
    assert report.problems == []
    assert report.settings is not None
    mock = report.settings.models[0].deployments[0].mock
    assert mock is not None and mock.failure == "503"
    [problem] = check(text.replace("503", "504")).problems
    assert "must be one of 'none', '500', '503', '429'" in problem and "(got '504')" in problem
    assert check(text.replace("503", "true")).problems  # a bool is not a status code


def test_an_empty_file_runs_with_defaults_and_says_so(tmp_path: Path) -> None:
    for text in ("", "\n\n", "# nothing here yet\n"):
        path = tmp_path / "empty.yaml"
        path.write_text(text)
        report = check_config(path, environ={})
        assert report.settings == Settings()
        assert report.warnings == [f"{path}: file is empty: the gateway will run with defaults"]
    assert check_config(None, environ={}).warnings == []


def test_load_settings_raises_every_problem_and_ignores_warnings(tmp_path: Path) -> None:
    from controltower.errors import ConfigError

    path = tmp_path / "c.yaml"
    path.write_text(MANY_MISTAKES)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={}, known_providers=KNOWN)
    assert len(caught.value.problems) == 10
    path.write_text('master_key: ""\n')
    assert load_settings(path, environ={}).master_key is None


# --- no secret is ever shown --------------------------------------------------------------------

SECRET = "sk-SECRET-4242"


@pytest.mark.parametrize(
    "text",
    [
        f"master_key: [{SECRET}]\n",
        f"master_key: {{key: {SECRET}}}\n",
        f"models: [{{name: a, deployments: [{{provider: mock, model: m, api_key: [{SECRET}]}}]}}]",
        "models: [{name: a, deployments: [{provider: mock, model: m,"
        f" headers: {{A: [{SECRET}]}}}}]}}]",
        f"models: [{{name: a, deployments: [{{provider: mock, model: m, api_ky: {SECRET}}}]}}]",
        f"database_url: [postgresql://u:{SECRET}@h/db]\n",
        f"models: [{{name: a, deployments: [{{provider: mock, api_key: {SECRET}}}]}}]",
    ],
)
def test_no_problem_shows_a_secret(text: str) -> None:
    report = check(text)
    assert report.problems
    assert all(SECRET not in p for p in [*report.problems, *report.warnings]), report.problems


def test_master_key_of_the_wrong_type_is_shown_masked() -> None:
    [problem] = check("master_key: 12345678\n").problems
    assert problem == (
        "c.yaml:1 master_key: must be text (got ***); "
        "fix: write a string (quote it if it looks like a number)"
    )


def test_mask_url_hides_the_password_only() -> None:
    assert mask_url("postgresql://ann:pa55@db:5432/ct") == "postgresql://ann:***@db:5432/ct"
    assert mask_url("sqlite:///controltower.db") == "sqlite:///controltower.db"
    assert mask_url("postgresql://ann@db/ct") == "postgresql://ann@db/ct"


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=20),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.text(max_size=8), inner, max_size=3),
    ),
    max_leaves=12,
)
FIELDS = st.sampled_from(
    ["models", "master_key", "database_url", "retention", "trace_queue_size", "backoff_base_s"]
)
DEPLOYMENT_FIELDS = st.sampled_from(
    ["provider", "model", "api_key", "headers", "weight", "mock", "price", "wieght"]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    top=st.dictionaries(FIELDS, VALUES, max_size=4),
    deployment=st.dictionaries(DEPLOYMENT_FIELDS, VALUES, max_size=5),
)
def test_any_input_gives_a_report_never_an_exception_nor_a_secret(
    top: dict[str, Any], deployment: dict[str, Any]
) -> None:
    data = {**top, "models": [{"name": "a", "deployments": [deployment]}]}
    data["master_key"] = SECRET
    deployment["api_key"] = SECRET if "api_key" not in deployment else [SECRET]
    deployment.setdefault("headers", {"Authorization": [SECRET]})
    text = yaml.safe_dump(data)
    report = check(text)
    assert all(SECRET not in p for p in [*report.problems, *report.warnings])
    assert (report.settings is None) == bool(report.problems)
    lines = [int(m.group(1)) for p in report.problems if (m := re.match(r"c\.yaml:(\d+)", p))]
    assert lines == sorted(lines)
