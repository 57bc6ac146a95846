"""Every code block of README.md and docs/*.md that is meant to run, run against a real
`controltower serve`, so the docs cannot drift from the code.

- Shell blocks (```bash, ```sh, ```console: its `$ ` lines) run with `bash -e`, python
  blocks with this venv's python, both in a temporary directory laid out like a fresh
  checkout (the shipped `prompts/` folder is copied in), with the venv's `bin` first on
  PATH and the documented address (127.0.0.1:4000, localhost:4000) replaced by the
  test server's. The server's SQLite file is `./controltower.db` there, also named by
  CONTROLTOWER_DATABASE_URL. `curl` fails on an HTTP error status.
- ```yaml blocks that look like a config are saved as `./controltower.yaml` (where the
  shell blocks after them find it) and checked with `controltower config check`; those
  that look like a prompt file are pushed into a throwaway database, and must equal the
  shipped file of the same name under `prompts/` when there is one; eval files (with
  `scorers:`) are saved as `./NAME.yaml` and loaded, so every problem fails the block.
- Each document gets its own server and directory; its blocks run in order, so a block
  may use what the blocks above it made (a block run alone runs those first).
- A block right after `<!-- docs-test: skip (reason) -->` is skipped with that reason.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from controltower.evals.spec import TOP_KEYS as EVAL_KEYS
from controltower.evals.spec import load_eval_file
from controltower.prompts.files import TOP_KEYS as PROMPT_KEYS
from controltower.settings import Settings
from tests.cli.test_cli import serving

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXAMPLE_PROMPTS = ROOT / "prompts"
SHELL = {"bash", "sh", "console"}
RUN = {*SHELL, "python", "yaml"}
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
MARKER = re.compile(r"<!--\s*docs-test:(.*?)-->")
SKIP = re.compile(r"\s*skip\s+\((.+)\)\s*")
DEFAULT_ADDRESS = re.compile(r"\b(?:127\.0\.0\.1|localhost):4000\b")
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# After these commands, wait for the gateway's prompt refresh (1 s by default) before the
# next block, as the docs promise the change is served within that time.
PROMPT_CHANGE = re.compile(r"controltower prompts (push|label|rollback|split)\b")
BLOCK_TIMEOUT_S = 60
# A curl that gets an error status fails the block (its body is still printed).
SHELL_PRELUDE = 'curl() { command curl --fail-with-body "$@"; }\n'


@dataclass(frozen=True)
class Block:
    """One fenced block of a document."""

    document: Path
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    skip: str | None

    @property
    def id(self) -> str:
        return f"{self.document.relative_to(ROOT).as_posix()}:{self.line}"


def blocks_of(document: Path) -> list[Block]:
    """The fenced blocks of a Markdown file, with the skip reason of the comment above."""
    lines = document.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence, lang = opening.group(2), opening.group(3).lower()
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        body = "\n".join(line.removeprefix(opening.group(1)) for line in lines[i + 1 : end])
        skip = _skip_reason(document, lines, i)
        found.append(Block(document, i + 1, lang, body + "\n", skip))
        i = end + 1
    return found


def _skip_reason(document: Path, lines: list[str], fence_index: int) -> str | None:
    above = fence_index - 1
    while above >= 0 and not lines[above].strip():
        above -= 1
    marker = MARKER.fullmatch(lines[above].strip()) if above >= 0 else None
    if marker is None:
        return None
    skip = SKIP.fullmatch(marker.group(1))
    assert skip, f"{document}:{above + 1}: write `<!-- docs-test: skip (why) -->`"
    return skip.group(1)


ALL_BLOCKS = [block for document in DOCUMENTS for block in blocks_of(document)]
RUNNABLE = [block for block in ALL_BLOCKS if block.lang in RUN]


@dataclass
class DocumentRun:
    """One document's directory, server and the outcome of each of its blocks so far."""

    document: Path
    workdir: Path
    stack: ExitStack
    outcomes: dict[int, str | None] = field(default_factory=dict)  # line -> failure
    url: str | None = None

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONTROLTOWER_")}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env["CONTROLTOWER_DATABASE_URL"] = f"sqlite:///{self.workdir / 'controltower.db'}"
        # a config's ${KEY} must be set for `config check`; no block calls a real provider
        text = self.document.read_text(encoding="utf-8")
        for name in ENV_REFERENCE.findall(text):
            env.setdefault(name, "docs-test-placeholder")
        return env

    def server(self) -> str:
        if self.url is None:
            self.url, _ = self.stack.enter_context(serving(env=self.env))
        return self.url

    def run(self, block: Block) -> None:
        """Run the blocks above this one that have not run yet, then this one."""
        for earlier in RUNNABLE:
            if earlier.document != block.document or earlier.line >= block.line:
                continue
            if earlier.skip is None and earlier.line not in self.outcomes:
                self._record(earlier)
        failure = self._record(block)
        if failure is not None:
            above = [self.outcomes[line] for line in sorted(self.outcomes) if line < block.line]
            failed = "".join(f"\n(before it, {f.splitlines()[0]})" for f in above if f)
            pytest.fail(failure + failed, pytrace=False)

    def _record(self, block: Block) -> str | None:
        try:
            run_block(block, self)
        except BlockFailed as exc:
            self.outcomes[block.line] = f"{block.id} failed\n{exc}"
        else:
            self.outcomes[block.line] = None
        return self.outcomes[block.line]


class BlockFailed(Exception):
    """A block exited with an error; the message holds what it printed."""


def run_block(block: Block, where: DocumentRun) -> None:
    """Run one block of a document in its directory, against its server."""
    if block.lang == "yaml":
        check_yaml(block, where)
        return
    url = where.server()
    text = DEFAULT_ADDRESS.sub(url.removeprefix("http://"), block.text)
    script = where.workdir / f".block-{block.line}"
    if block.lang == "python":
        script.write_text(text, encoding="utf-8")
        command = [sys.executable, str(script)]
    else:
        script.write_text(SHELL_PRELUDE + shell_commands(block.lang, text), encoding="utf-8")
        command = ["bash", "-e", str(script)]
    execute(command, where)
    if PROMPT_CHANGE.search(text):
        time.sleep(1.5)


def shell_commands(lang: str, text: str) -> str:
    """A shell block's commands: all of it, or for `console` its `$ ` lines."""
    if lang != "console":
        return text
    commands: list[str] = []
    continued = False
    for line in text.splitlines():
        if line.startswith("$ ") or continued:
            commands.append(line.removeprefix("$ "))
            continued = line.endswith("\\")
    return "\n".join(commands) + "\n"


def execute(command: list[str], where: DocumentRun) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(
            command,
            cwd=where.workdir,
            env=where.env,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        printed = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr
        raise BlockFailed(f"still running after {BLOCK_TIMEOUT_S} s\n{printed}") from None
    if done.returncode != 0:
        raise BlockFailed(
            f"exit status {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        )
    return done


def check_yaml(block: Block, where: DocumentRun) -> None:
    """A config is checked and kept as ./controltower.yaml; a prompt file is pushed."""
    data = yaml.safe_load(block.text)
    keys = set(data) if isinstance(data, dict) else set()
    cli = [sys.executable, "-m", "controltower"]
    if keys and keys <= set(Settings.model_fields):
        (where.workdir / "controltower.yaml").write_text(block.text, encoding="utf-8")
        execute([*cli, "config", "check", "controltower.yaml"], where)
    elif "scorers" in keys and keys <= set(EVAL_KEYS):
        # an eval file: kept as ./NAME.yaml for the shell blocks after it, and checked whole
        file = where.workdir / f"{data['name']}.yaml"
        file.write_text(block.text, encoding="utf-8")
        load_eval_file(file)
    elif "name" in keys and keys <= set(PROMPT_KEYS):
        shipped = EXAMPLE_PROMPTS / f"{data['name']}.yaml"
        if shipped.exists() and block.text != shipped.read_text(encoding="utf-8"):
            raise BlockFailed(f"it shows {shipped.relative_to(ROOT)}: make them the same")
        folder = where.workdir / f".prompt-{block.line}"
        file = folder / f"{data['name']}.yaml"
        file.parent.mkdir(parents=True)
        file.write_text(block.text, encoding="utf-8")
        throwaway = f"sqlite:///{folder / 'check.db'}"
        execute([*cli, "prompts", "push", str(folder), "--database-url", throwaway], where)
    else:
        raise BlockFailed(
            "neither a config nor a prompt file: fix the block, or mark it "
            "`<!-- docs-test: skip (why) -->`"
        )


@pytest.fixture(scope="module")
def document_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[Path, DocumentRun]]:
    runs: dict[Path, DocumentRun] = {}
    with ExitStack() as stack:
        for document in DOCUMENTS:
            workdir = tmp_path_factory.mktemp(document.stem)
            shutil.copytree(EXAMPLE_PROMPTS, workdir / "prompts")
            runs[document] = DocumentRun(document, workdir, stack)
        yield runs


@pytest.mark.parametrize("block", RUNNABLE, ids=[block.id for block in RUNNABLE])
def test_block(block: Block, document_runs: dict[Path, DocumentRun]) -> None:
    if block.skip is not None:
        pytest.skip(f"{block.id}: {block.skip}")
    document_runs[block.document].run(block)


def test_every_docs_test_comment_is_a_skip_right_above_a_block() -> None:
    marked = {(block.document, block.line) for block in ALL_BLOCKS if block.skip}
    for document in DOCUMENTS:
        lines = document.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, 1):
            if MARKER.fullmatch(line.strip()) is None:
                continue
            after = number
            while after < len(lines) and not lines[after].strip():
                after += 1
            where = f"{document.relative_to(ROOT)}:{number}"
            assert (document, after + 1) in marked, f"{where}: no code block right below it"


def test_a_console_block_runs_its_dollar_lines() -> None:
    shown = '$ controltower traces list \\\n    --json\n{"data": []}\n$ echo done\ndone\n'
    commands = "controltower traces list \\\n    --json\necho done\n"
    assert shell_commands("console", shown) == commands
