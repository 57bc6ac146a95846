"""`controltower eval calibrate RUN --labels FILE`: a judge's verdicts against human labels."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import orjson
from rich.console import Console
from rich.table import Table

from controltower.cli.common import config_option, database_url_option, fail
from controltower.cli.datasets import open_eval_store
from controltower.errors import ControlTowerError
from controltower.evals.baselines import answers_by_item
from controltower.evals.calibrate import Calibration, calibrate, read_labels


@click.command("calibrate")
@click.argument("run_id")
@click.option(
    "--labels",
    "labels_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="human labels: JSONL or CSV with item_id, value, and optionally scorer, repeat",
)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.option("--seed", default=0, show_default=True, help="seed of the bootstrap interval")
@config_option
@database_url_option
def calibrate_command(
    run_id: str,
    labels_path: Path,
    as_json: bool,
    seed: int,
    config: str | None,
    database_url: str | None,
) -> None:
    """Compare the LLM judges of run RUN_ID with human labels of the same items."""
    store = open_eval_store(config, database_url, must_exist=True)
    try:
        labels = read_labels(labels_path)
        run = store.get_run(run_id)
        baselines = {}
        for entry in run.record.get("scorers") or []:
            if entry.get("baseline_run"):
                baselines = answers_by_item(store.run_results(entry["baseline_run"]))
        found = calibrate(
            run, store.run_results(run.id), labels, baseline_texts=baselines, seed=seed
        )
    except ControlTowerError as exc:
        fail(exc)
    finally:
        store.engine.dispose()
    if as_json:
        click.echo(orjson.dumps([c.as_json() for c in found], option=orjson.OPT_INDENT_2).decode())
    else:
        Console().print(_table(run_id, found))
    sys.exit(0)


def _table(run_id: str, found: list[Calibration]) -> Table:
    table = Table(title=f"judges of {run_id} against human labels")
    for column in (
        "judge",
        "pairs (items)",
        "agreement",
        "kappa [95% CI]",
        "length bias",
        "swap flips",
    ):
        table.add_column(column)
    for c in found:
        kappa = "—" if c.kappa is None else f"{c.kappa:.2f}"
        if c.kappa_ci is not None:
            kappa += f" [{c.kappa_ci[0]:.2f}, {c.kappa_ci[1]:.2f}]"
        if c.kappa_weighting == "quadratic":
            kappa += " (quadratic)"
        agreement = f"{c.agreement:.0%}"
        if c.within_one is not None:
            agreement += f" ({c.within_one:.0%} within 1)"
        bias = "—" if c.length_bias is None else f"{c.length_bias:+.2f}"
        flips = "—" if c.swap_flip_rate is None else f"{c.swap_flip_rate:.0%}"
        if c.longer_preferred is not None:
            flips += f", longer picked {c.longer_preferred:.0%}"
        table.add_row(c.scorer, f"{c.pairs} ({c.items})", agreement, kappa, bias, flips)
    return table
