"""`controltower datasets`: push and pull dataset files, versions, tags, items from traces."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import orjson

from controltower.cli.common import (
    acting_user,
    config_option,
    database_url_option,
    fail,
    open_at,
    when,
)
from controltower.domain.dataset import DatasetVersion
from controltower.errors import ControlTowerError, InvalidRequest
from controltower.evals.dataset_export import EXPORT_FORMATS, dump_jsonl
from controltower.evals.dataset_files import FORMATS, read_items
from controltower.evals.store import EvalStore


def open_eval_store(config: str | None, database_url: str | None, *, must_exist: bool) -> Any:
    """The eval store of the command; a read never creates a new SQLite file."""
    from controltower.store import open_eval_store as open_sql

    return open_at(config, database_url, open_sql, must_exist=must_exist)


@contextmanager
def eval_store(
    config: str | None, database_url: str | None, *, must_exist: bool = True
) -> Iterator[EvalStore]:
    """The store, closed afterwards; its errors end the command with status 2."""
    store = open_eval_store(config, database_url, must_exist=must_exist)
    try:
        yield store
    except ControlTowerError as exc:
        fail(exc)
    finally:
        store.engine.dispose()


def parse_dataset_ref(ref: str) -> tuple[str, int | None, str | None]:
    """NAME, NAME@TAG or NAME#VERSION as (name, version, tag)."""
    from controltower.prompts.content import version_number

    if "#" in ref:
        name, _, number = ref.partition("#")
        version = version_number(number)
        if version is None:
            raise InvalidRequest(f"{ref!r}: write NAME#VERSION with a version number")
        return name, version, None
    name, _, tag = ref.partition("@")
    return name, None, tag or None


def _version(store: EvalStore, ref: str) -> DatasetVersion:
    name, number, tag = parse_dataset_ref(ref)
    return store.dataset_version(name, version=number, tag=tag)


def _line(v: DatasetVersion) -> str:
    tags = f"  tags: {', '.join(v.tags)}" if v.tags else ""
    return (
        f"{v.dataset}#{v.version:<4} {v.item_count:>7} items  {v.hash[:12]}  "
        f"{when(v.created_us)}{tags}"
    )


def _version_json(v: DatasetVersion) -> dict[str, Any]:
    return {
        "name": v.dataset,
        "version": v.version,
        "hash": v.hash,
        "items": v.item_count,
        "created_us": v.created_us,
        "tags": list(v.tags),
        "message": v.message,
    }


@click.group()
def datasets() -> None:
    """Versioned datasets: push and pull files, tags, items from traces, exports."""


@datasets.command()
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="default: from the file")
@click.option("--tag", "-t", help="also tag the version, e.g. golden-v3")
@click.option("--message", "-m", help="what changed")
@click.option("--author", default=None, help="default: $CONTROLTOWER_USER or the login name")
@config_option
@database_url_option
def push(
    name: str,
    file: Path,
    fmt: str | None,
    tag: str | None,
    message: str | None,
    author: str | None,
    config: str | None,
    database_url: str | None,
) -> None:
    """Make FILE's items a new version of dataset NAME (none when nothing changed)."""
    try:
        items = read_items(file, fmt)
    except ControlTowerError as exc:
        fail(exc)
    with eval_store(config, database_url, must_exist=False) as store:
        version, created = store.push_dataset(
            name, items, message=message or f"from {file.name}", author=acting_user(author)
        )
        if tag:
            version = store.tag_dataset(name, tag, version.version)
    state = "created" if created else "unchanged"
    click.echo(f"{version.ref} {state}: {version.item_count} items, hash {version.hash[:12]}")


@datasets.command()
@click.argument("ref")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--format", "fmt", type=click.Choice(EXPORT_FORMATS), default="jsonl", show_default=True
)
@config_option
@database_url_option
def pull(ref: str, file: Path, fmt: str, config: str | None, database_url: str | None) -> None:
    """Write the items of REF (NAME, NAME@TAG, NAME#VERSION) to FILE."""
    _write(ref, file, fmt, config, database_url)


@datasets.command()
@click.argument("ref")
@click.option(
    "--output",
    "-o",
    "file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="default: standard output",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(EXPORT_FORMATS),
    default="jsonl",
    show_default=True,
    help="openai-chat is OpenAI's chat fine-tuning format",
)
@config_option
@database_url_option
def export(
    ref: str, file: Path | None, fmt: str, config: str | None, database_url: str | None
) -> None:
    """Export REF as JSONL: ours, OpenAI Evals samples, or chat fine-tuning lines."""
    _write(ref, file, fmt, config, database_url)


def _write(
    ref: str, file: Path | None, fmt: str, config: str | None, database_url: str | None
) -> None:
    with eval_store(config, database_url) as store:
        version = _version(store, ref)
        items = store.dataset_items(version.dataset, version.version)
    data, skipped = dump_jsonl(items, fmt)
    if file is None:
        click.echo(data.decode(), nl=False)
    else:
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(data)
        click.echo(f"{version.ref}: {len(items) - skipped} items -> {file}", err=True)
    if skipped:
        click.secho(
            f"warning: {skipped} item(s) that the {fmt} format cannot hold (no expected "
            "answer, or no text or message input) were left out",
            fg="yellow",
            err=True,
        )


@datasets.command("list")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@config_option
@database_url_option
def list_datasets(as_json: bool, config: str | None, database_url: str | None) -> None:
    """List datasets with their newest version."""
    with eval_store(config, database_url) as store:
        found = store.list_datasets()
    if as_json:
        click.echo(orjson.dumps([_version_json(v) for v in found]).decode())
        return
    for version in found:
        click.echo(_line(version))


@datasets.command()
@click.argument("ref")
@click.option("--items", "limit", default=10, show_default=True, help="items to print")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@config_option
@database_url_option
def show(ref: str, limit: int, as_json: bool, config: str | None, database_url: str | None) -> None:
    """Show a dataset's versions and the first items of REF."""
    with eval_store(config, database_url) as store:
        version = _version(store, ref)
        versions = store.list_dataset_versions(version.dataset)
        items = store.dataset_items(version.dataset, version.version)
    if as_json:
        body = {
            "version": _version_json(version),
            "versions": [_version_json(v) for v in versions],
            "items": [i.as_json() for i in items[:limit]],
        }
        click.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
        return
    for v in versions:
        click.echo(("* " if v.version == version.version else "  ") + _line(v))
    click.echo("")
    for item in items[:limit]:
        click.echo(orjson.dumps(item.as_json()).decode()[:300])
    if len(items) > limit:
        click.echo(f"... and {len(items) - limit} more")


@datasets.command()
@click.argument("ref")
@click.argument("tag")
@config_option
@database_url_option
def tag(ref: str, tag: str, config: str | None, database_url: str | None) -> None:
    """Point TAG at the version REF names (moving it if it is elsewhere)."""
    with eval_store(config, database_url) as store:
        version = _version(store, ref)
        tagged = store.tag_dataset(version.dataset, tag, version.version)
    click.echo(f"{tagged.dataset}@{tag} -> #{tagged.version}")


@datasets.command("add-from-traces")
@click.argument("name")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--since", help="ISO time, or a time ago: 30m, 24h, 7d")
@click.option("--until", help="ISO time, or a time ago")
@click.option("--trace-name", "name_", help="trace name")
@click.option("--user", help="user id")
@click.option("--session", help="session id")
@click.option("--model", help="model of a generation in the trace")
@click.option("--status", type=click.Choice(["ok", "error"]))
@click.option("--tags", help="comma-separated; all must be present")
@click.option("--metadata", help="key or key=value, comma-separated")
@click.option("--search", "q", help="text in the input or output")
@click.option("--project")
@click.option("--trace", "trace_ids", multiple=True, help="one trace by id (repeatable)")
@click.option("--no-expected", is_flag=True, help="leave `expected` empty (label later)")
@click.option("--message", "-m", help="what changed")
@config_option
@database_url_option
def add_from_traces(
    name: str,
    limit: int,
    trace_ids: tuple[str, ...],
    no_expected: bool,
    message: str | None,
    config: str | None,
    database_url: str | None,
    **filters: str | None,
) -> None:
    """Add traces (by the trace filters, or by id) to dataset NAME as a new version."""
    from controltower.evals.from_traces import item_from_trace

    params = {("name" if k == "name_" else k): v for k, v in filters.items() if v is not None}
    with eval_store(config, database_url) as store:
        traces = _traces(store, params, trace_ids, limit)
        added = [item_from_trace(t, expected=not no_expected) for t in traces]
        version, new = store.extend_dataset(
            name, added, message=message or f"{len(added)} trace(s) added"
        )
    click.echo(
        f"{version.ref} {'created' if new else 'unchanged'}: {new} new item(s) from "
        f"{len(traces)} trace(s), {version.item_count} items in all"
    )


def _traces(
    store: Any, params: dict[str, str], trace_ids: tuple[str, ...], limit: int
) -> list[dict[str, Any]]:
    from controltower.domain import now_us
    from controltower.store import SqlTraceStore
    from controltower.tracing.params import trace_filter

    traces = SqlTraceStore(store.engine)
    if trace_ids:
        found = [traces.get_trace(t, span_io=False) for t in trace_ids]
        missing = [t for t, f in zip(trace_ids, found, strict=True) if f is None]
        if missing:
            raise InvalidRequest(f"no trace {', '.join(missing)}", param="trace")
        return [f for f in found if f is not None]
    where = trace_filter(params, now_us())
    out: list[dict[str, Any]] = []
    cursor = None
    while len(out) < limit:
        page, cursor = traces.list_traces(min(100, limit - len(out)), cursor, where)
        for row in page:
            full = traces.get_trace(row["id"], span_io=False)
            if full is not None:
                out.append(full)
        if cursor is None or not page:
            break
    return out
