"""load_settings: ${ENV} interpolation, env overrides, and errors that name file, line and fix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from controltower.errors import ConfigError
from controltower.settings import Settings, load_settings, parse_settings

VALID = """\
database_url: sqlite:///traces.db
models:
  - name: chat
    strategy: least-latency
    fallbacks: [backup]
    deployments:
      - provider: openai
        model: gpt-4o-mini
        api_key: ${OPENAI_API_KEY}
        api_base: ${OPENAI_BASE:-https://api.openai.com/v1}
        weight: 2
        headers:
          X-Team: "${TEAM:-search}-${REGION:-eu}"
      - provider: azure
        model: gpt-4o-prod
        api_version: "2024-10-21"
        api_key: ${AZURE_KEY:-}
        price: {input: 2.5, output: 10, cached_input: 1.25}
  - name: backup
    deployments:
      - provider: mock
        model: mock-small
        mock: {reply: "fallback", failure: "503", failure_times: 1}
"""


def write(tmp_path: Path, text: str, name: str = "controltower.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(
    tmp_path: Path,
    text: str,
    environ: dict[str, str] | None = None,
    known: set[str] | None = None,
) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ=environ or {}, known_providers=known)
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


def one_problem(
    tmp_path: Path,
    text: str,
    environ: dict[str, str] | None = None,
    known: set[str] | None = None,
) -> str:
    problems = problems_of(tmp_path, text, environ, known)
    assert len(problems) == 1, problems
    return problems[0]


# --- valid files ------------------------------------------------------------------------------


def test_valid_file_with_env_and_defaults(tmp_path: Path) -> None:
    environ = {"OPENAI_API_KEY": "sk-live-1", "REGION": "us"}
    settings = load_settings(write(tmp_path, VALID), environ=environ)

    assert settings.database_url == "sqlite:///traces.db"
    chat, backup = settings.models
    assert (chat.name, chat.strategy, chat.fallbacks) == ("chat", "least-latency", ["backup"])
    openai, azure = chat.deployments
    assert openai.api_key is not None and openai.api_key.get_secret_value() == "sk-live-1"
    assert openai.api_base == "https://api.openai.com/v1"
    assert openai.weight == 2.0
    assert openai.headers == {"X-Team": "search-us"}
    assert azure.api_version == "2024-10-21"
    assert azure.api_key is not None and azure.api_key.get_secret_value() == ""
    assert azure.price is not None and azure.price.cached_input == 1.25
    assert backup.deployments[0].mock is not None
    assert backup.deployments[0].mock.failure_times == 1
    assert settings.alias("backup") is backup


def test_set_variable_wins_over_its_default(tmp_path: Path) -> None:
    environ = {"OPENAI_API_KEY": "k", "OPENAI_BASE": "http://127.0.0.1:8000/v1"}
    settings = load_settings(write(tmp_path, VALID), environ=environ)
    assert settings.models[0].deployments[0].api_base == "http://127.0.0.1:8000/v1"


def test_empty_file_and_no_file_give_defaults(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, ""), environ={}) == Settings()
    assert load_settings(None, environ={}) == Settings()


def test_environment_overrides_database_url_and_master_key(tmp_path: Path) -> None:
    environ = {
        "OPENAI_API_KEY": "k",
        "CONTROLTOWER_DATABASE_URL": "postgresql://db/ct",
        "CONTROLTOWER_MASTER_KEY": "sk-master",
    }
    settings = load_settings(write(tmp_path, VALID), environ=environ)
    assert settings.database_url == "postgresql://db/ct"
    assert settings.master_key is not None
    assert settings.master_key.get_secret_value() == "sk-master"

    defaults = load_settings(None, environ=environ)
    assert defaults.database_url == "postgresql://db/ct"


def test_known_providers_accept_the_listed_ones(tmp_path: Path) -> None:
    known = {"openai", "azure", "mock"}
    load_settings(write(tmp_path, VALID), environ={"OPENAI_API_KEY": "k"}, known_providers=known)


def test_parse_settings_takes_a_mapping() -> None:
    data = {"models": [{"name": "m", "deployments": [{"provider": "mock", "model": "${M}"}]}]}
    settings = parse_settings(data, "<dict>", environ={"M": "mock-1"})
    assert settings.models[0].deployments[0].model == "mock-1"


# --- errors name the file, the line, the field and the fix ------------------------------------


def test_missing_model_in_a_deployment(tmp_path: Path) -> None:
    text = """\
models:
  - name: chat
    deployments:
      - provider: openai
        api_key: sk-1
"""
    problem = one_problem(tmp_path, text)
    path = tmp_path / "controltower.yaml"
    assert problem.startswith(f"{path}:4 models[0].deployments[0].model: ")
    assert "is required" in problem and "Field required" not in problem
    assert "fix: add this field" in problem


def test_negative_weight(tmp_path: Path) -> None:
    text = """\
models:
  - name: chat
    deployments:
      - provider: openai
        model: gpt-4o-mini
        weight: -1
"""
    problem = one_problem(tmp_path, text)
    assert re.search(r"controltower\.yaml:6 models\[0\]\.deployments\[0\]\.weight: ", problem)
    assert "(got -1)" in problem
    assert "fix: use a larger number" in problem


def test_unknown_key_is_a_typo(tmp_path: Path) -> None:
    text = """\
models:
  - name: chat
    deployments:
      - provider: openai
        model: gpt-4o-mini
        wieght: 2
"""
    problem = one_problem(tmp_path, text)
    assert re.search(r"controltower\.yaml:6 models\[0\]\.deployments\[0\]\.wieght: ", problem)
    assert "unknown field; fix: did you mean `weight`?" in problem


def test_unknown_top_level_key(tmp_path: Path) -> None:
    problem = one_problem(tmp_path, "models: []\ndatabse_url: sqlite://\n")
    assert re.search(r"controltower\.yaml:2 databse_url: ", problem)


def test_bad_strategy(tmp_path: Path) -> None:
    text = """\
models:
  - name: chat
    strategy: round-robin
    deployments:
      - {provider: openai, model: gpt-4o-mini}
"""
    problem = one_problem(tmp_path, text)
    assert re.search(r"controltower\.yaml:3 models\[0\]\.strategy: ", problem)
    assert "'weighted', 'least-latency' or 'least-busy'" in problem
    assert "(got 'round-robin')" in problem
    assert "fix: use one of the values listed" in problem


def test_several_problems_are_reported_together(tmp_path: Path) -> None:
    text = """\
models:
  - name: chat
    retries: many
    deployments:
      - provider: openai
        timeout_s: 0
"""
    problems = problems_of(tmp_path, text)
    assert len(problems) == 3
    assert any(":3 models[0].retries: " in p and "write a whole number" in p for p in problems)
    assert any(":5 models[0].deployments[0].model: " in p for p in problems)
    assert any(":6 models[0].deployments[0].timeout_s: " in p for p in problems)


FALLBACK_TO_UNKNOWN = """\
models:
  - name: chat
    fallbacks: [gpt-5]
    deployments:
      - {provider: openai, model: gpt-4o-mini}
"""

DUPLICATE_NAMES = """\
models:
  - name: chat
    deployments:
      - {provider: openai, model: gpt-4o-mini}
  - name: chat
    deployments:
      - {provider: openai, model: gpt-4o}
"""


def test_fallback_to_an_unknown_model(tmp_path: Path) -> None:
    problem = one_problem(tmp_path, FALLBACK_TO_UNKNOWN)
    assert "controltower.yaml" in problem
    assert "models[0].fallbacks[0]" in problem
    assert "unknown model 'gpt-5'" in problem
    assert "declare it under models, or use one of ['chat']" in problem


def test_fallback_to_itself(tmp_path: Path) -> None:
    text = FALLBACK_TO_UNKNOWN.replace("[gpt-5]", "[chat]")
    problem = one_problem(tmp_path, text)
    assert "models[0].fallbacks[0]" in problem
    assert "falls back to itself" in problem


def test_duplicate_model_names(tmp_path: Path) -> None:
    problem = one_problem(tmp_path, DUPLICATE_NAMES)
    assert "controltower.yaml" in problem
    assert "models[1].name" in problem
    assert "duplicate model name 'chat'" in problem


@pytest.mark.parametrize(
    ("text", "line", "path"),
    [(FALLBACK_TO_UNKNOWN, 3, "models[0].fallbacks[0]"), (DUPLICATE_NAMES, 5, "models[1].name")],
    ids=["fallback", "duplicate"],
)
def test_reference_errors_name_the_line(tmp_path: Path, text: str, line: int, path: str) -> None:
    problem = one_problem(tmp_path, text)
    assert f"controltower.yaml:{line} {path}" in problem


def test_duplicate_model_names_suggest_a_fix(tmp_path: Path) -> None:
    problem = one_problem(tmp_path, DUPLICATE_NAMES)
    assert "fix" in problem or "rename" in problem


def test_missing_environment_variable(tmp_path: Path) -> None:
    problem = one_problem(tmp_path, VALID, environ={})
    assert re.search(r"controltower\.yaml:9 models\[0\]\.deployments\[0\]\.api_key: ", problem)
    assert "environment variable OPENAI_API_KEY is not set" in problem
    assert "export OPENAI_API_KEY=..." in problem
    assert "${OPENAI_API_KEY:-default}" in problem


def test_each_missing_variable_is_reported(tmp_path: Path) -> None:
    text = "database_url: ${DB_URL}\nmaster_key: ${MASTER}\n"
    problems = problems_of(tmp_path, text)
    assert [p.split(": ", 1)[0].rsplit("/", 1)[-1] for p in problems] == [
        "controltower.yaml:1 database_url",
        "controltower.yaml:2 master_key",
    ]


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    text = """\
models:
  - name: chat
    deployments:
      - provider: openai
        model: [gpt-4o-mini
  - name: other
"""
    problem = one_problem(tmp_path, text)
    match = re.match(rf"{re.escape(str(tmp_path / 'controltower.yaml'))}:(\d+): ", problem)
    assert match is not None, problem
    assert int(match.group(1)) in (5, 6)
    assert "not valid YAML" in problem
    assert "fix the syntax there" in problem


def test_bad_indentation_names_the_line(tmp_path: Path) -> None:
    problem = one_problem(tmp_path, "models:\n  - name: chat\n   deployments: []\n")
    assert re.search(r"controltower\.yaml:3: not valid YAML", problem)


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    problem = one_problem(tmp_path, "- just\n- a list\n")
    assert "controltower.yaml" in problem
    assert "models:" in problem


def test_unknown_provider(tmp_path: Path) -> None:
    text = """\
models:
  - name: chat
    deployments:
      - provider: mock
        model: m
      - provider: opneai
        model: gpt-4o-mini
"""
    problem = one_problem(tmp_path, text, known={"openai", "anthropic", "mock"})
    assert re.search(r"controltower\.yaml:6 models\[0\]\.deployments\[1\]\.provider: ", problem)
    assert "unknown provider 'opneai'" in problem
    assert "fix: did you mean `openai`? use one of ['anthropic', 'mock', 'openai']" in problem


def test_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as caught:
        load_settings(missing, environ={})
    assert str(missing) in str(caught.value)
    assert "check the path" in str(caught.value)


def test_retention_and_prompt_refresh_are_checked(tmp_path: Path) -> None:
    settings = parse_settings(
        "retention: {days: 30, projects: {audit: 365}}\nprompt_refresh_s: 5\n", "c.yaml"
    )
    assert settings.retention.days == 30 and settings.retention.projects == {"audit": 365}
    assert settings.prompt_refresh_s == 5
    problem = one_problem(tmp_path, "retention:\n  projects:\n    staging: 0\n")
    assert re.search(r"controltower\.yaml:3 retention\.projects\.staging: ", problem)
    assert "fix: use a larger number" in problem
    problem = one_problem(tmp_path, "prompt_refresh_s: 0\n")
    assert "prompt_refresh_s" in problem and "fix: use a larger number" in problem
