"""`controltower eval calibrate RUN`: a judge's verdicts against human scores of the same
items, from the review queues (`--queue`, or every queue that has the run's items) or
from a file of labels (`--labels`). Exit 2 when there are no human scores to compare."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from controltower.cli.common import config_option, database_url_option, fail
from controltower.cli.datasets import open_eval_store
from controltower.errors import ControlTowerError, InvalidRequest
from controltower.evals.baselines import answers_by_item
from controltower.evals.calibrate import Calibration, HumanLabel, calibrate, read_labels
from controltower.evals.review_labels import review_labels
from controltower.evals.store import EvalStore


@click.command("calibrate")
@click.argument("run_id")
@click.option("--queue", help="the human scores of one review queue (default: every queue)")
@click.option(
    "--labels",
    "labels_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="human labels from a file instead: JSONL or CSV with item_id, value, and "
    "optionally scorer, repeat",
)
@click.option(
    "--pair",
    "pairs",
    multiple=True,
    metavar="CRITERION=SCORER",
    help="compare a rubric criterion with a scorer of another name (repeatable)",
)
@click.option(
    "--json",
    "json_path",
    is_flag=False,
    flag_value="-",
    default=None,
    metavar="[PATH]",
    help="write the figures as JSON to PATH (alone: print them instead of the table)",
)
@click.option("--seed", default=0, show_default=True, help="seed of the bootstrap interval")
@config_option
@database_url_option
def calibrate_command(
    run_id: str,
    queue: str | None,
    labels_path: Path | None,
    pairs: tuple[str, ...],
    json_path: str | None,
    seed: int,
    config: str | None,
    database_url: str | None,
) -> None:
    """Compare the judges of run RUN_ID with human scores of the same items."""
    store = open_eval_store(config, database_url, must_exist=True)
    notes: list[str] = []
    try:
        run = store.get_run(run_id)
        results = store.run_results(run.id)
        if labels_path is not None:
            labels = read_labels(labels_path)
        else:
            labels, notes = _review_labels(store, run, results, queue, _pairs(pairs))
        found = calibrate(run, results, labels, baseline_texts=_baselines(store, run), seed=seed)
    except ControlTowerError as exc:
        fail(exc)
    finally:
        store.engine.dispose()
    for note in notes:
        click.secho(f"note: {note}", fg="yellow", err=True)
    figures = orjson.dumps([c.as_json() for c in found], option=orjson.OPT_INDENT_2)
    if json_path == "-":
        click.echo(figures.decode())
        sys.exit(0)
    if json_path is not None:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_bytes(figures + b"\n")
    Console().print(_table(run_id, found, "review queues" if labels_path is None else "labels"))
    sys.exit(0)


def _review_labels(
    store: EvalStore, run: Any, results: Any, queue: str | None, pairs: dict[str, str]
) -> tuple[list[HumanLabel], list[str]]:
    """The human scores of the run's items in the review queues, as labels."""
    if queue is not None:
        chosen = store.get_queue(queue)
        scores = store.human_scores(queue_id=chosen.id)
        queues = {chosen.id: chosen}
    else:
        scores = store.human_scores(run_id=run.id)
        queues = {q: store.get_queue(q) for q in {s.queue_id for s in scores}}
    if not scores:
        where = f"in review queue {queue!r}" if queue else "in any review queue"
        raise InvalidRequest(
            f"no human scores of run {run.id} {where}; fix: make a queue of its results "
            f"(controltower review create NAME --from-run {run.id} --rubric FILE), score "
            "items at /review in the UI, then calibrate; or pass --labels FILE"
        )
    labels, notes = review_labels(run, results, scores, queues, pairs)
    if not labels:
        raise InvalidRequest(" ".join(notes) or f"no human score pairs with a scorer of {run.id}")
    return labels, notes


def _pairs(given: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for entry in given:
        criterion, sep, scorer = entry.partition("=")
        if not sep or not criterion.strip() or not scorer.strip():
            raise click.BadParameter(f"{entry!r}: write CRITERION=SCORER", param_hint="--pair")
        out[criterion.strip()] = scorer.strip()
    return out


def _baselines(store: EvalStore, run: Any) -> dict[tuple[str, int], str]:
    """The answers of the run a pairwise judge compared with, by item and repeat."""
    for entry in run.record.get("scorers") or []:
        if entry.get("baseline_run"):
            return answers_by_item(store.run_results(entry["baseline_run"]))
    return {}


def _table(run_id: str, found: list[Calibration], source: str) -> Table:
    table = Table(title=f"judges of {escape(run_id)} against human {source}")
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
        kappa += " (quadratic)" if c.kappa_weighting == "quadratic" else " (plain)"
        agreement = f"{c.agreement:.0%}"
        if c.within_one is not None:
            agreement += f" ({c.within_one:.0%} within 1)"
        bias = "—" if c.length_bias is None else f"{c.length_bias:+.2f}"
        if c.judge_length_correlation is not None and c.human_length_correlation is not None:
            bias += (
                f" (judge {c.judge_length_correlation:+.2f}, "
                f"people {c.human_length_correlation:+.2f})"
            )
        flips = "—" if c.swap_flip_rate is None else f"{c.swap_flip_rate:.0%}"
        if c.longer_preferred is not None:
            flips += f", longer picked {c.longer_preferred:.0%}"
        if c.longer_preferred_against_humans is not None:
            flips += f" ({c.longer_preferred_against_humans:.0%} where people did not)"
        table.add_row(escape(c.scorer), f"{c.pairs} ({c.items})", agreement, kappa, bias, flips)
    return table
