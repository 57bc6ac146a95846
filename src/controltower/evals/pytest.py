"""The pytest plugin: a `controltower_eval` fixture that runs eval files in tests.

Registered through the `pytest11` entry point, so it loads wherever controltower is
installed; it does nothing until a test asks for the fixture (and imports the runner
only then). Options: `--ct-config`, `--ct-database-url`, `--ct-no-cache`,
`--ct-gateway-url`, `--ct-api-key`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from controltower.evals.eval_report import EvalReport

EvalFixture = Callable[..., "EvalReport"]


def pytest_addoption(parser: pytest.Parser) -> None:
    """The options of the `controltower_eval` fixture."""
    group = parser.getgroup("controltower", "controltower evals")
    group.addoption("--ct-config", help="the gateway config the evals call models through")
    group.addoption("--ct-database-url", help="where runs are stored (default: as the CLI)")
    group.addoption(
        "--ct-no-cache", action="store_true", help="call every model again, cache nothing"
    )
    group.addoption(
        "--ct-gateway-url", help="call models through the controltower gateway at this URL"
    )
    group.addoption("--ct-api-key", help="the key of the gateway at --ct-gateway-url")


@pytest.fixture
def controltower_eval(request: pytest.FixtureRequest) -> EvalFixture:
    """`controltower_eval("evals/refund.yaml", **kwargs)` runs the eval, returns its report.

    The eval file's path is relative to the requesting test file (else to the rootdir),
    `--ct-config`'s to the invocation directory; keyword arguments are those of
    `controltower.evals.run`.
    """
    options = request.config.option
    here = Path(str(request.path)).parent
    defaults: dict[str, Any] = {
        "config": options.ct_config,
        "database_url": options.ct_database_url,
        "gateway_url": options.ct_gateway_url,
        "api_key": options.ct_api_key or os.environ.get("CONTROLTOWER_API_KEY"),
    }
    if options.ct_no_cache:
        defaults["cache"] = "off"

    def run_eval(eval: str | os.PathLike[str] | dict[str, Any], **kwargs: Any) -> EvalReport:
        from controltower.evals.api import run

        if isinstance(eval, dict):
            kwargs.setdefault("base_dir", here)
        else:
            eval = _eval_path(Path(eval), here, request.config.rootpath)
        return run(eval, **{**defaults, **kwargs})

    return run_eval


def _eval_path(path: Path, here: Path, rootdir: Path) -> Path:
    """The eval file beside the test file, else under the rootdir (beside the test when
    neither exists, so that the error names the first place looked at)."""
    if path.is_absolute():
        return path
    for base in (here, rootdir):
        if (base / path).is_file():
            return base / path
    return here / path
