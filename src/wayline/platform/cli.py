"""`wayline ingest` and `wayline failures`: batch ingestion and failed records from a shell.

They run in-process against the configured database (settings from the environment, like every
other command), through the same functions as the HTTP API: `ingest` creates a batch, uploads the
file into it and completes it, so the batch is listed by `GET /batches` like any other.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

failures_app = typer.Typer(no_args_is_help=True, help="Failed records of a dataset: list and replay.")


def _out() -> Console:
    # Made per use, not at import, so the terminal width (COLUMNS) of the moment is honoured.
    return Console()


def _err() -> Console:
    return Console(stderr=True)

FORMATS = {"jsonl": ("json", False), "json": ("json", True), "csv": ("csv", False), "parquet": ("parquet", False)}
EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet",
              ".pq": "parquet"}
READ_BYTES = 1_048_576
SANDBOX_HELP = "sandbox name (default: the settings' default_sandbox)"


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in some containers
        return "cli"


def _open(sandbox: str | None) -> tuple[Any, str]:
    """(runtime with the platform role, the sandbox's id); exits with a message when there is none."""
    import sqlalchemy as sa

    from wayline.config import Settings
    from wayline.kernel import tenancy
    from wayline.runtime import Runtime, configure_logging

    settings = Settings()
    configure_logging(settings)
    rt = Runtime(settings, roles=("platform",))
    name = sandbox or settings.default_sandbox
    try:
        sb = rt.store.read_sync(tenancy.get_sandbox, name)
    except (sa.exc.OperationalError, sa.exc.ProgrammingError) as exc:
        rt.close()
        _err().print(f"[red]The database is not ready[/] ({str(exc.orig).splitlines()[0]}); "
                     "run `wayline migrate` first")
        raise typer.Exit(1) from None
    if sb is None:
        rt.close()
        _err().print(f"[red]No sandbox[/] {name!r}: create it (wayline sandboxes create) or pass --sandbox")
        raise typer.Exit(1)
    return rt, sb.id


def _fail(problem: Any) -> typer.Exit:
    _err().print(f"[red]{problem.title}:[/] {problem.detail}")
    for e in getattr(problem, "errors", [])[:10]:
        _err().print(f"  {e.pointer}: {e.detail}")
    return typer.Exit(1)


def _mapping(pairs: list[str]) -> dict[str, str] | None:
    out = {}
    for pair in pairs:
        col, sep, path = pair.partition("=")
        if not sep or not col or not path:
            raise typer.BadParameter(f"{pair!r} is not column=field.path", param_hint="--map")
        out[col] = path
    return out or None


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while data := fh.read(READ_BYTES):
            yield data


def ingest(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="the file to load"),
    dataset: str = typer.Option(..., "--dataset", "-d", help="dataset id"),
    format: str | None = typer.Option(None, "--format", "-f",
                                      help="jsonl, json (one document or array), csv or parquet; "
                                           "default from the file's extension"),
    map_: list[str] = typer.Option([], "--map", "-m", help="csv/parquet: column=field.path (repeatable)"),
    batch_size: int = typer.Option(1_000, "--batch-size", min=1, max=100_000, help="records per transaction"),
    sandbox: str | None = typer.Option(None, "--sandbox", help=SANDBOX_HELP),
) -> None:
    """Load a file into a dataset as a batch, with progress; exit code 1 when the batch failed."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TransferSpeedColumn,
    )

    from wayline.kernel.problems import Problem
    from wayline.platform import batch_processing, batches

    name = format or EXTENSIONS.get(file.suffix.lower())
    if name not in FORMATS:
        raise typer.BadParameter(f"say which format {file.name!r} is: {', '.join(FORMATS)}", param_hint="--format")
    fmt, multiline = FORMATS[name]
    mapping = _mapping(map_)
    size = file.stat().st_size
    rt, sandbox_id = _open(sandbox)
    actor = _actor()
    try:
        svc = rt.platform
        ds = svc.dataset(sandbox_id, dataset)
        compiled = svc.compiled_for(ds)
        batch = rt.store.write_blocking(lambda c: batches.create_batch(
            c, sandbox_id=sandbox_id, dataset_id=dataset, format=fmt, multiline=multiline, mapping=mapping,
            actor=actor))
        columns = (TextColumn("{task.description:<10}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                   TextColumn("{task.fields[records]:>10,} records"), TimeElapsedColumn())
        with Progress(*columns, console=_out()) as progress:
            up = progress.add_task("upload", total=size, records=0)
            batches.upload_file(rt.store, sandbox_id=sandbox_id, batch_id=batch.id, dataset_id=dataset,
                                name=file.name, chunks=_chunks(file), on_bytes=lambda n: progress.advance(up, n))
            batch, _ = rt.store.write_blocking(lambda c: batches.start_complete(
                c, sandbox_id=sandbox_id, batch_id=batch.id, actor=actor))
            work = progress.add_task("process", total=size, records=0)
            batch = batch_processing.process_batch(
                rt.store, batch, dataset=ds, compiled=compiled, limits=svc.limits, chunk=batch_size,
                on_progress=lambda recs, done: progress.update(work, completed=done, records=recs))
    except Problem as p:
        raise _fail(p) from None
    finally:
        rt.close()
    _report(batch)
    if batch.status == "failed":
        raise typer.Exit(1)


def _report(batch: Any) -> None:
    colour = {"success": "green", "partial": "yellow", "failed": "red"}.get(batch.status, "cyan")
    _out().print(f"batch [bold]{batch.id}[/] [{colour}]{batch.status}[/]: {batch.total:,} records, "
                  f"{batch.ok:,} stored, {batch.duplicate:,} duplicate, {batch.failed:,} failed")
    for e in batch.errors[:5]:
        _out().print(f"  [dim]{e.get('file', '')}[/] {e['message']}", highlight=False)
    if batch.status == "partial":
        _err().print(f"[yellow]warning:[/] {batch.failed:,} record(s) failed; see them with "
                  f"`wayline failures list --dataset {batch.dataset_id} --batch {batch.id}`")


@failures_app.command("list")
def failures_list(
    dataset: str = typer.Option(..., "--dataset", "-d", help="dataset id"),
    status: str = typer.Option("failed", help="failed, replayed, discarded or all"),
    batch: str | None = typer.Option(None, "--batch", help="only this batch's"),
    limit: int = typer.Option(50, min=1, max=1_000),
    sandbox: str | None = typer.Option(None, "--sandbox", help=SANDBOX_HELP),
) -> None:
    """List a dataset's failed records with their first violation."""
    from wayline.kernel.problems import Problem
    from wayline.platform import datasets, failures

    if status not in (*failures.STATUSES, "all"):
        raise typer.BadParameter(f"one of {', '.join(failures.STATUSES)}, all", param_hint="--status")
    rt, sandbox_id = _open(sandbox)

    def q(c: Any) -> dict[str, Any]:
        datasets.get_dataset(c, sandbox_id, dataset)
        return failures.list_failed(c, dataset, status=None if status == "all" else status, batch_id=batch,
                                    limit=limit, cursor=None)

    try:
        page = rt.store.read_sync(q)
    except Problem as p:
        raise _fail(p) from None
    finally:
        rt.close()
    table = Table(title=f"failed records of {dataset}")
    for col in ("id", "batch", "record id", "status", "received", "first violation"):
        table.add_column(col, overflow="fold")
    for item in page["items"]:
        errors = item["errors"] or [{}]
        first = f"{errors[0].get('pointerToViolation') or '/'}: {errors[0].get('message', '')}"
        if len(errors) > 1:
            first += f" (+{len(errors) - 1} more)"
        when = datetime.fromtimestamp(item["received"] / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(str(item["id"]), item["batchId"] or "", item["recordId"] or "", item["status"], when, first)
    _out().print(table)
    if page["next"]:
        _out().print(f"[dim]more than {limit}; raise --limit to see more[/]")


@failures_app.command("replay")
def failures_replay(
    dataset: str = typer.Option(..., "--dataset", "-d", help="dataset id"),
    ids: list[int] = typer.Option([], "--id", help="failed record id (repeatable); all waiting ones by default"),
    batch: str | None = typer.Option(None, "--batch", help="only this batch's"),
    sandbox: str | None = typer.Option(None, "--sandbox", help=SANDBOX_HELP),
) -> None:
    """Validate failed records again (as corrected) and store those now valid."""
    from wayline.kernel.problems import Problem
    from wayline.platform import failures

    rt, sandbox_id = _open(sandbox)
    actor = _actor()
    try:
        svc = rt.platform
        ds = svc.dataset(sandbox_id, dataset)
        compiled = svc.compiled_for(ds)
        result = rt.store.write_blocking(lambda c: failures.replay(
            c, dataset=ds, compiled=compiled, limits=svc.limits, ids=list(ids) or None, batch_id=batch,
            actor=actor))
    except Problem as p:
        raise _fail(p) from None
    finally:
        rt.close()
    still = result["stillFailing"]
    _out().print(f"replayed [green]{result['replayed']}[/] of {result['considered']} "
                  f"({result['duplicates']} already stored); [{'yellow' if still else 'green'}]{len(still)}[/] "
                  "still failing")
    if still:
        shown = ", ".join(map(str, still[:20])) + (" …" if len(still) > 20 else "")
        _err().print(f"[yellow]warning:[/] still failing: {shown}")
