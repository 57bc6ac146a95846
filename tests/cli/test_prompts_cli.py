"""`controltower prompts` as a user runs it: a real process over a real SQLite file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from controltower.cli import main
from controltower.cli import prompts as prompts_cli
from controltower.prompts import InMemoryPromptStore

CLI = [sys.executable, "-m", "controltower", "prompts"]

REFUND = """\
# answers refund questions
name: refund-policy
model: fast
params: {temperature: 0.2, max_tokens: 400}
variables:
  question: {type: string, required: true}
  tier: {type: string, enum: [free, pro], default: free}
messages:
  - role: system
    content: |
      You answer questions about our refund policy.
      {% if tier == "pro" %}Pro customers get 60 days.{% endif %}
  - role: user
    content: "{{ question }}"
"""
GREETING = "name: support/greeting\ntext: Hello {{ who }}!\n"


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CONTROLTOWER_DATABASE_URL": f"sqlite:///{tmp_path / 'ct.db'}",
        "CONTROLTOWER_USER": "ann",
    }
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, env=env)


def ok(tmp_path: Path, *args: str) -> str:
    result = run(tmp_path, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def write_prompts(root: Path) -> None:
    (root / "support").mkdir(parents=True)
    (root / "refund-policy.yaml").write_text(REFUND)
    (root / "support" / "greeting.yaml").write_text(GREETING)


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*.yaml")}


def test_git_round_trip(tmp_path: Path) -> None:
    src = tmp_path / "prompts"
    write_prompts(src)
    assert "2 prompt(s): 2 new version(s)" in ok(tmp_path, "push", str(src), "-m", "first")
    assert "2 prompt(s): 0 new version(s)" in ok(tmp_path, "push", str(src))

    (src / "refund-policy.yaml").write_text(REFUND.replace("60 days", "90 days"))
    out = ok(tmp_path, "push", str(src), "-m", "longer refunds", "--label", "staging")
    assert "refund-policy#2 created, staging -> #2" in out
    assert "support/greeting#1 unchanged, staging -> #1" in out

    listed = orjson.loads(ok(tmp_path, "list", "--json"))
    assert [(p["name"], p["version"]) for p in listed] == [
        ("refund-policy", 2),
        ("support/greeting", 1),
    ]
    shown = ok(tmp_path, "show", "refund-policy#2")
    assert "# refund-policy#2  labels: latest, staging" in shown and "by ann: longer" in shown
    assert shown.endswith(REFUND.replace("60 days", "90 days"))
    diff = ok(tmp_path, "diff", "refund-policy", "1", "staging")
    assert '-{% if tier == "pro" %}Pro customers get 60 days.' in diff
    assert '+{% if tier == "pro" %}Pro customers get 90 days.' in diff

    pulled = tmp_path / "pulled"
    ok(tmp_path, "pull", str(pulled))
    assert files(pulled) == files(src)


def test_a_file_that_does_not_parse_names_path_and_line(tmp_path: Path) -> None:
    src = tmp_path / "prompts"
    write_prompts(src)
    (src / "broken.yaml").write_text("name: broken\ntext: ok\ntemprature: 1\n")
    result = run(tmp_path, "push", str(src))
    assert result.returncode == 2
    assert f"{src / 'broken.yaml'}:3 temprature: unknown field" in result.stderr
    assert ok(tmp_path, "list", "--json").strip() == "[]"  # nothing was pushed


def test_labels_rollback_protection_split_history_and_audit(tmp_path: Path) -> None:
    src = tmp_path / "prompts"
    src.mkdir()
    for text in ("one", "two", "three"):
        (src / "p.yaml").write_text(f"name: p\ntext: {text}\n")
        ok(tmp_path, "push", str(src))
    assert "p@production: - -> #1 (create)" in ok(tmp_path, "label", "p", "1", "production")
    out = ok(tmp_path, "label", "p", "3", "production", "--protect")
    assert "p@production: #1 -> #3 (move)" in out and "is protected" in out

    refused = run(tmp_path, "label", "p", "2", "production")
    assert refused.returncode == 2 and "protected" in refused.stderr and "--force" in refused.stderr
    refused = run(tmp_path, "rollback", "p", "production")
    assert refused.returncode == 2 and "protected" in refused.stderr
    assert "#3 -> #1 (rollback)" in ok(tmp_path, "rollback", "p", "production", "--force")
    assert "text: one" in ok(tmp_path, "show", "p@production")

    split = ok(tmp_path, "split", "p", "canary", "2=90", "3=10")
    assert "p@canary: - -> split #2=90, #3=10 (split)" in split
    bad = run(tmp_path, "split", "p", "canary", "2=x")
    assert bad.returncode == 2 and "VERSION=WEIGHT" in bad.stderr

    history = ok(tmp_path, "history", "p", "production").splitlines()
    assert [line.split("  ", 1)[1].split()[0] for line in history] == ["ann"] * 3
    assert "(rollback)" in history[0] and "(create)" in history[-1]
    events = orjson.loads(ok(tmp_path, "audit", "p", "--json"))
    assert [e["action"] for e in events][:4] == [
        "label.split",
        "label.rollback",
        "label.protect",
        "label.move",
    ]
    assert {e["actor"] for e in events} == {"ann"}
    missing = run(tmp_path, "show", "p@nope")
    assert missing.returncode == 2 and "no label `nope`" in missing.stderr


@pytest.fixture
def memory_store(monkeypatch: pytest.MonkeyPatch) -> InMemoryPromptStore:
    store = InMemoryPromptStore()
    monkeypatch.setattr(prompts_cli, "open_prompt_store", lambda *args, **kwargs: store)
    return store


def test_in_process_with_the_in_memory_store(
    memory_store: InMemoryPromptStore, tmp_path: Path
) -> None:
    write_prompts(tmp_path)
    runner = CliRunner()
    pushed = runner.invoke(main, ["prompts", "push", str(tmp_path), "--author", "cy"])
    assert pushed.exit_code == 0, pushed.output
    assert memory_store.get_version("support/greeting").author == "cy"
    shown = runner.invoke(main, ["prompts", "show", "support/greeting", "--json"])
    assert orjson.loads(shown.output)["content"]["text"] == "Hello {{ who }}!"
    same = runner.invoke(main, ["prompts", "diff", "refund-policy", "1", "latest"])
    assert same.output == "no difference\n"
    bad = runner.invoke(main, ["prompts", "show", "refund-policy#x"])
    assert bad.exit_code == 2
