"""`controltower spend`: what the gateway's calls cost, by project, key, user, model,
deployment, prompt version or tag, over time buckets, from the gateway's database."""

from __future__ import annotations

import csv
import sys
from typing import Any

import click
import orjson
from rich.console import Console
from rich.table import Table

from controltower.cli.common import config_option, database_url_option, fail, open_trace_store
from controltower.cli.render import safe
from controltower.errors import ControlTowerError
from controltower.tracing.spend import INTERVALS, SPEND_BY, SUMS, report_rows


@click.command()
@click.option("--by", type=click.Choice(SPEND_BY), default="project", show_default=True)
@click.option("--since", default="7d", show_default=True, help="ISO time or 30m, 24h, 7d, 2w ago")
@click.option("--until", help="ISO time or a time ago (default: now)")
@click.option("--interval", type=click.Choice(list(INTERVALS)), default="day", show_default=True)
@click.option("--project", help="Only this project's calls")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True,
              help="The dearest groups shown")  # fmt: skip
@click.option("--csv", "as_csv", is_flag=True, help="One CSV row per group and bucket")
@click.option("--json", "as_json", is_flag=True, help="The report as JSON (as GET /api/spend)")
@config_option
@database_url_option
def spend(
    by: str,
    since: str,
    until: str | None,
    interval: str,
    project: str | None,
    limit: int,
    as_csv: bool,
    as_json: bool,
    config: str | None,
    database_url: str | None,
) -> None:
    """Spend, tokens, requests and cache savings, by one dimension over time."""
    from controltower.domain import now_us
    from controltower.tracing.spend import spend_query

    params = {"by": by, "since": since, "interval": interval, "limit": str(limit)}
    if until:
        params["until"] = until
    if project:
        params["project"] = project
    store = open_trace_store(config, database_url, must_exist=True)
    try:
        report = store.spend_report(spend_query(params, now_us()))
    except ControlTowerError as exc:
        fail(exc)
    finally:
        store.close()
    if as_json:
        click.echo(orjson.dumps(report).decode())
    elif as_csv:
        _write_csv(report)
    else:
        _table(report)


def _write_csv(report: dict[str, Any]) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["bucket", report["by"], *SUMS])
    for row in report_rows(report):
        writer.writerow(["" if v is None else v for v in row.values()])


def _table(report: dict[str, Any]) -> None:
    until = report["until"] or "now"
    table = Table(title=f"Spend by {report['by']}, {report['since']} to {until}", box=None)
    for header in (report["by"], "requests", "errors", "tokens in", "tokens out", "cost $",
                   "cache hits", "saved $"):  # fmt: skip
        table.add_column(header, justify="left" if header == report["by"] else "right")
    rows = [*report["groups"], {"key": "total", **report["totals"]}]
    for group in rows:
        key = group["key"]
        table.add_row(
            safe("(none)" if key is None else str(key)),
            str(group["requests"]),
            str(group["errors"]),
            str(group["input_tokens"]),
            str(group["output_tokens"]),
            _usd(group["cost"]),
            str(group["cache_hits"]),
            _usd(group["saved"]),
        )
    Console().print(table)
    if report["groups_left_out"]:
        click.echo(f"{report['groups_left_out']} more groups left out (--limit)", err=True)


def _usd(value: float | None) -> str:
    return "-" if value is None else f"{value:.6f}"
