"""`controltower eval run --gateway-url`: every model call of an eval over HTTP to a real
`controltower serve` process, which traces them; the runs kept in the CLI's own database."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from controltower.errors import APIError, RateLimited
from controltower.gateway.remote import _gateway_error
from controltower.store import open_store
from tests.cli.test_cli import serving
from tests.cli.test_eval_cli import EXAMPLE, setup

CLI = [sys.executable, "-m", "controltower"]
KEY = "remote-eval-master-key"


def _error_body(value: Any) -> bytes:
    return json.dumps({"error": value}).encode()


def cli(where: Path, *args: str, database: Path) -> subprocess.CompletedProcess[str]:
    """The CLI in `where`, its runs in `database` (not the gateway's)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONTROLTOWER_", "GITHUB_"))}
    env["CONTROLTOWER_DATABASE_URL"] = f"sqlite:///{database}"
    return subprocess.run(
        [*CLI, *args], cwd=where, capture_output=True, text=True, timeout=120, env=env
    )


def gateway_env(database: Path) -> dict[str, str]:
    return {"CONTROLTOWER_DATABASE_URL": f"sqlite:///{database}", "CONTROLTOWER_MASTER_KEY": KEY}


def stored_traces(database: Path, ids: list[str]) -> list[dict[str, Any]]:
    store = open_store(f"sqlite:///{database}")
    try:
        found = [store.get_trace(trace_id) for trace_id in ids]
    finally:
        store.close()
    assert all(found), "every call of the eval is a trace of the gateway"
    return [t for t in found if t is not None]


def test_an_eval_over_a_remote_gateway_is_traced_there(tmp_path: Path) -> None:
    setup(tmp_path, items=4, extra="ttft_ms: 0")
    gateway_db, evals_db = tmp_path / "gateway.db", tmp_path / "evals.db"
    with serving("--config", str(tmp_path / "config.yaml"), env=gateway_env(gateway_db)) as (
        url,
        _,
    ):
        done = cli(
            tmp_path,
            "eval",
            "run",
            "refund.yaml",
            "-q",
            "--gateway-url",
            f"{url}/v1/",
            "--api-key",
            KEY,
            "--json",
            "r.json",
            database=evals_db,
        )
        assert done.returncode == 0, done.stderr
        assert f"gateway: {url}" in done.stderr
        # no key: every call is refused, which is an infrastructure error, with the fix
        refused = cli(
            tmp_path, "eval", "run", "refund.yaml", "-q", "--gateway-url", url, database=evals_db
        )
    assert refused.returncode == 3, refused.stderr
    run = orjson.loads((tmp_path / "r.json").read_bytes())["runs"][0]
    record = run["record"]
    assert record["target"]["resolved"] == {"alias": "fast", "gateway": url}
    assert record["scorers"][1]["resolved"] == {"alias": "judge", "gateway": url}
    assert run["summary"]["scorers"]["contains"]["mean"] == 0.5
    assert run["summary"]["scorers"]["judge"]["mean"] == 3.0

    shown = cli(tmp_path, "eval", "show", run["id"], "--json", database=evals_db)
    results = orjson.loads(shown.stdout)["results"]
    targets = [r["trace_id"] for r in results]
    judges = [tid for r in results for tid in r["scores"]["judge"]["details"]["trace_ids"]]
    assert len(set(targets)) == 4 and len(set(judges)) == 4
    for trace in stored_traces(gateway_db, targets):
        assert {"eval:refund", f"eval-run:{run['id']}"} <= set(trace["tags"])
        assert trace["metadata"]["eval_run"] == run["id"]
        assert trace["spans"][0]["model"] == "fast-1"
    for trace in stored_traces(gateway_db, judges):
        assert trace["metadata"]["eval_scorer"] == "judge"

    runs = cli(tmp_path, "eval", "list", "--json", database=evals_db)
    latest = orjson.loads(runs.stdout)[0]
    failed = cli(tmp_path, "eval", "show", latest["id"], "--json", database=evals_db)
    errors = {r["error"] for r in orjson.loads(failed.stdout)["results"]}
    assert all("Unauthorized" in e and "--api-key" in e for e in errors), errors


def test_a_gateway_url_that_is_no_http_url_is_a_usage_error(tmp_path: Path) -> None:
    setup(tmp_path, items=1)
    done = cli(
        tmp_path,
        "eval",
        "run",
        "refund.yaml",
        "--gateway-url",
        "ftp://x",
        database=tmp_path / "e.db",
    )
    assert done.returncode == 2
    assert "--gateway-url 'ftp://x': not an http:// or https:// URL" in done.stderr
    keyed = cli(
        tmp_path,
        "eval",
        "run",
        "refund.yaml",
        "--gateway-url",
        "http://me:pw@127.0.0.1:4000",
        database=tmp_path / "e.db",
    )
    assert keyed.returncode == 2 and "--api-key, not in the URL" in keyed.stderr


def test_the_model_upgrade_example_over_a_remote_gateway(tmp_path: Path) -> None:
    work = tmp_path / "example"
    shutil.copytree(EXAMPLE, work, ignore=shutil.ignore_patterns("*.db", "*.md"))
    gateway_db, evals_db = tmp_path / "gateway.db", tmp_path / "evals.db"
    push = ["--database-url", f"sqlite:///{gateway_db}"]
    for argv in (
        ["prompts", "push", "prompts", "--label", "production", *push],
        ["prompts", "label", "refund-policy", "1", "candidate", *push],
    ):
        assert cli(work, *argv, database=gateway_db).returncode == 0
    config = str(work / "controltower.yaml")
    with serving("--config", config, env=gateway_env(gateway_db)) as (url, _):
        remote = ["--gateway-url", url, "--api-key", KEY, "-q"]
        first = cli(
            work,
            "eval",
            "run",
            "evals/refund.yaml",
            *remote,
            "--json",
            "first.json",
            database=evals_db,
        )
        assert first.returncode == 0, first.stderr
        pushed = cli(
            work,
            "prompts",
            "push",
            "prompts-next",
            "--label",
            "candidate",
            *push,
            database=gateway_db,
        )
        assert pushed.returncode == 0, pushed.stderr
        time.sleep(1.5)  # the gateway serves a moved label within its prompt refresh (1 s)
        regressed = cli(
            work,
            "eval",
            "run",
            "evals/refund.yaml",
            *remote,
            "--baseline",
            "production",
            "--markdown",
            "report.md",
            "--json",
            "second.json",
            database=evals_db,
        )
        assert regressed.returncode == 1, regressed.stderr
    resolved = orjson.loads((work / "first.json").read_bytes())["runs"][0]["record"]["target"]
    assert resolved["resolved"]["version"] == 1 and resolved["resolved"]["label"] == "candidate"
    assert resolved["resolved"]["gateway"] == url and resolved["resolved"]["content_hash"]
    second = orjson.loads((work / "second.json").read_bytes())["runs"][0]["record"]["target"]
    assert second["resolved"]["version"] == 2
    report = (work / "report.md").read_text()
    assert "## Eval `refund-policy`: failed" in report
    assert "| contains | 1.000 | 0.500 | -0.500 |" in report and "regressed" in report


@given(
    st.integers(100, 599),
    st.one_of(
        st.binary(max_size=300),
        st.builds(
            _error_body,
            st.recursive(
                st.none() | st.text(max_size=20) | st.integers(),
                lambda inner: (
                    st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=3)
                ),
                max_leaves=10,
            ),
        ),
    ),
)
def test_any_error_answer_of_the_gateway_is_an_api_error(status: int, body: bytes) -> None:
    error = _gateway_error(status, body, None, "the gateway")
    assert isinstance(error, APIError) and error.message.startswith("the gateway: ")
    assert isinstance(error, RateLimited) == (status == 429)
