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
                views=svc.prepare_pool, on_progress=lambda recs, done: progress.update(work, completed=done, records=recs))
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


# -- profiles and identities -------------------------------------------------------------------------

profile_app = typer.Typer(no_args_is_help=True, help="Merged profiles and identity graphs.")


def _run(coro_fn: Any, sandbox: str | None) -> Any:
    """Run a ProfileService call on a fresh event loop; problems become a red message and exit 1."""
    import asyncio

    from wayline.kernel.problems import Problem

    rt, sandbox_id = _open(sandbox)
    try:
        return asyncio.run(coro_fn(rt.profiles, sandbox_id))
    except Problem as p:
        raise _fail(p) from None
    finally:
        rt.close()


@profile_app.command("get")
def profile_get(
    ns: str = typer.Option(..., "--ns", help="namespace code, e.g. Email, CRMID"),
    value: str = typer.Option(..., "--id", help="identity value"),
    explain: bool = typer.Option(False, "--explain", help="show which fragment supplied each attribute"),
    policy: str | None = typer.Option(None, "--merge-policy", help="merge policy id (default: the sandbox's)"),
    fields: str | None = typer.Option(None, "--fields", help="comma-separated paths, e.g. person.name,loyalty"),
    as_json: bool = typer.Option(False, "--json", help="print the API's JSON"),
    sandbox: str | None = typer.Option(None, "--sandbox", help=SANDBOX_HELP),
) -> None:
    """The merged profile of an identity (as GET /profiles answers it)."""
    import orjson

    wanted = [f.strip() for f in fields.split(",") if f.strip()] if fields else None
    out = _run(lambda svc, sb: svc.profile(sandbox_id=sb, ident=svc.ident(ns, value), merge_policy_id=policy,
                                           explain=explain, fields=wanted), sandbox)
    if as_json:
        typer.echo(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())
        return
    con = _out()
    pol = out["mergePolicy"]
    con.print(f"[bold]profile {out['profileId']}[/]  identities: "
              + ", ".join(f"{i['namespace']['code']}:{i['id']}" for i in out["identities"]))
    con.print(f"merge policy {pol['id'] or '(none: no default)'} · graph {pol['identityGraph']} · "
              f"{pol['attributeMerge']} · {out['eventCount']} event(s)"
              + (" [yellow](over the segmentation limit)[/]" if out["eventsOverLimit"] else ""))
    table = Table(show_header=True)
    table.add_column("attribute", overflow="fold")
    table.add_column("value", overflow="fold")
    if explain:
        for col in ("dataset", "identity", "record", "updated"):
            table.add_column(col, overflow="fold")
    for pointer, val in _leaves(out["entity"]):
        row = [pointer, orjson.dumps(val).decode()]
        if explain:
            src = _source_of(out.get("explanation") or {}, pointer)
            row += ([src["datasetId"], f"{src['identity']['namespace']['code']}:{src['identity']['id']}",
                     str(src["recordId"]), _when(src["updatedAt"])] if src else ["", "", "", ""])
        table.add_row(*row)
    con.print(table)


def _leaves(node: Any, at: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict) and node:
        for k, v in node.items():
            yield from _leaves(v, f"{at}/{k}")
    else:
        yield at or "/", node


def _source_of(explanation: dict[str, Any], pointer: str) -> dict[str, Any] | None:
    # union fields are explained per item (/identityMap/Email/<id>); a leaf inside takes its item's source
    while pointer:
        if pointer in explanation:
            return explanation[pointer]
        pointer = pointer.rsplit("/", 1)[0]
    return None


def _when(ms: Any) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds") if isinstance(ms, int) else ""


@profile_app.command("graph")
def profile_graph(
    ns: str = typer.Option(..., "--ns", help="namespace code"),
    value: str = typer.Option(..., "--id", help="identity value"),
    sandbox: str | None = typer.Option(None, "--sandbox", help=SANDBOX_HELP),
) -> None:
    """The identity graph of an identity: members, links and what happened to it."""
    g = _run(lambda svc, sb: svc.identity_graph(sandbox_id=sb, ident=svc.ident(ns, value)), sandbox)
    con = _out()
    con.print(f"[bold]graph {g['graphId']}[/] · {g['size']} identities")
    table = Table("namespace", "id", "first seen", "last seen")
    for m in g["members"]:
        table.add_row(m["namespace"]["code"], m["id"], _when(m["firstSeen"]), _when(m["lastSeen"]))
    con.print(table)
    for e in g["events"]:
        con.print(f"  {_when(e['at'])} {e['kind']}: {e['detail']}")


@profile_app.command("rebuild")
def profile_rebuild(
    sandbox: str | None = typer.Option(None, "--sandbox", help=SANDBOX_HELP),
    chunk: int = typer.Option(500, min=1, max=10_000, help="profiles per unit of work"),
) -> None:
    """Recompute the stored profiles under the sandbox's current default merge policy."""
    rt, sandbox_id = _open(sandbox)
    try:
        with _err().status("rebuilding profiles…"):
            n = rt.profiles.rebuild(sandbox_id=sandbox_id, chunk=chunk)
    finally:
        rt.close()
    _out().print(f"rebuilt the stored profiles of sandbox {sandbox_id} in {n} chunk(s)")


# -- segments ---------------------------------------------------------------------------------------

segments_app = typer.Typer(no_args_is_help=True, help="Segment definitions and batch evaluation.")


@segments_app.command("evaluate")
def segments_evaluate(
    segment_ids: list[str] = typer.Argument(None, help="segment ids (default with --all: every batch-enabled one)"),
    all_: bool = typer.Option(False, "--all", help="every batch-enabled definition"),
    sandbox: str | None = typer.Option(None, "--sandbox", help=SANDBOX_HELP),
) -> None:
    """Evaluate segments in batch now, with a progress bar; prints the job's counts."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from wayline.kernel.problems import Problem

    if not segment_ids and not all_:
        raise typer.BadParameter("name segment ids, or --all", param_hint="SEGMENT_IDS")
    rt, sandbox_id = _open(sandbox)
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=_err()) as bar:
            task = bar.add_task("evaluating", total=None)

            def step(segment_id: str, done: int, total: int) -> None:
                bar.update(task, total=total, completed=done, description=f"evaluated {segment_id}")

            job = rt.segments.evaluate(sandbox_id=sandbox_id, segment_ids=None if all_ else list(segment_ids),
                                       on_progress=step)
    except Problem as p:
        raise _fail(p) from None
    finally:
        rt.close()
    table = Table(title=f"job {job['id']} · {job['status']} · {job['durationMs']} ms")
    for col in ("segment", "realized", "existing", "exited", "entered", "left", "seconds"):
        table.add_column(col)
    for sid, c in job["counts"].items():
        table.add_row(sid, *(str(c.get(k, "")) for k in ("realized", "existing", "exited", "entered", "left",
                                                          "seconds")))
    _out().print(table)


@segments_app.command("list")
def segments_list(sandbox: str | None = typer.Option(None, "--sandbox", help=SANDBOX_HELP)) -> None:
    """Segment definitions of the sandbox."""
    defs = _run_segments(lambda svc, sb: svc.definitions(sandbox_id=sb), sandbox)
    table = Table("id", "name", "evaluation", "expression")
    for d in defs:
        modes = ",".join(k for k, v in d["evaluationInfo"].items() if v["enabled"])
        table.add_row(d["id"], d["name"], modes, d["expression"]["value"])
    _out().print(table)


def _run_segments(coro_fn: Any, sandbox: str | None) -> Any:
    import asyncio

    from wayline.kernel.problems import Problem

    rt, sandbox_id = _open(sandbox)
    try:
        return asyncio.run(coro_fn(rt.segments, sandbox_id))
    except Problem as p:
        raise _fail(p) from None
    finally:
        rt.close()
