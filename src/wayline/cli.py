"""The `wayline` command."""

from __future__ import annotations

import typer
from rich.console import Console

from wayline.benchcli import bench_app
from wayline.config import Settings
from wayline.platform import cli as platform_cli

app = typer.Typer(no_args_is_help=True, help="Wayline: platform, journeys and messaging in one.")
keys_app = typer.Typer(no_args_is_help=True, help="API keys.")
sandboxes_app = typer.Typer(no_args_is_help=True, help="Sandboxes.")
app.add_typer(keys_app, name="keys")
app.add_typer(sandboxes_app, name="sandboxes")
app.command("ingest")(platform_cli.ingest)
app.add_typer(platform_cli.failures_app, name="failures")
app.add_typer(platform_cli.profile_app, name="profile")
app.add_typer(platform_cli.segments_app, name="segments")
app.add_typer(bench_app, name="bench")
console = Console()
err = Console(stderr=True)


def _runtime(roles: tuple[str, ...] | None = None):
    from wayline.runtime import ROLES, Runtime, configure_logging

    settings = Settings()
    configure_logging(settings)
    return Runtime(settings, roles=ROLES if roles is None else roles)


@app.command()
def migrate() -> None:
    """Bring the database to the latest schema."""
    rt = _runtime(())
    rt.migrate()
    console.print(f"[green]migrated[/] {rt.store.url.split('@')[-1]}")
    rt.close()


def _serve(roles: tuple[str, ...], host: str | None, port: int | None) -> None:
    import uvicorn

    from wayline.runtime import build_app, tune_gc

    rt = _runtime(roles)
    rt.background = True
    rt.migrate()
    key = rt.bootstrap()
    if key:
        console.print(f"[bold]First start.[/] Sandbox [cyan]{rt.settings.default_sandbox}[/] created. "
                      "Admin API key (shown once, keep it):")
        console.print(key, highlight=False, soft_wrap=True)
    app_ = build_app(rt)
    tune_gc(rt.settings)
    h, p = host or rt.settings.host, port or rt.settings.port
    console.print(f"Wayline listening on http://{h}:{p}  (OpenAPI at /docs)")
    uvicorn.run(app_, host=h, port=p, log_level="warning", access_log=False)
    rt.close()


@app.command()
def run(host: str = typer.Option(None), port: int = typer.Option(None)) -> None:
    """The embedded default: migrate, create the first sandbox and key if needed, serve every role."""
    _serve(("platform", "journeys", "messaging"), host, port)


@app.command()
def serve(role: list[str] = typer.Option(["platform", "journeys", "messaging"], help="roles to serve"),
          host: str = typer.Option(None), port: int = typer.Option(None)) -> None:
    """Serve the API for some roles (platform, journeys, messaging)."""
    _serve(tuple(role), host, port)


@keys_app.command("create")
def keys_create(sandbox: str = typer.Option(..., help="sandbox name"),
                role: str = typer.Option(..., help="admin, ingest or read"),
                name: str = typer.Option("", help="a label for the key")) -> None:
    """Create an API key and print it (the key is shown only once)."""
    from wayline.kernel import tenancy
    from wayline.kernel.problems import Problem

    rt = _runtime(())

    def unit(conn):
        sb = tenancy.get_sandbox(conn, sandbox)
        if sb is None:
            raise Problem(404, "not-found", "Not found", f"sandbox {sandbox!r} does not exist")
        return tenancy.create_key(conn, sandbox_id=sb.id, role=role, name=name, actor="cli")[0]

    try:
        print(rt.store.run(unit))
    except Problem as p:
        err.print(f"[red]{p.title}:[/] {p.detail}")
        raise typer.Exit(1) from None
    finally:
        rt.close()


@sandboxes_app.command("create")
def sandboxes_create(name: str, type: str = typer.Option("development", help="production or development")) -> None:
    """Create a sandbox."""
    from wayline.kernel import tenancy
    from wayline.kernel.problems import Problem

    rt = _runtime(())

    def unit(conn):
        org = tenancy.ensure_organization(conn, name=rt.settings.organization, tenant_id=rt.settings.tenant_id)
        return tenancy.create_sandbox(conn, org_id=org, name=name, type=type)

    try:
        sb = rt.store.run(unit)
        console.print(f"sandbox [cyan]{sb.name}[/] ({sb.type}) id {sb.id}")
    except Problem as p:
        err.print(f"[red]{p.title}:[/] {p.detail}")
        raise typer.Exit(1) from None
    finally:
        rt.close()


@sandboxes_app.command("list")
def sandboxes_list() -> None:
    """List sandboxes."""
    from wayline.kernel import tenancy

    rt = _runtime(())
    for sb in rt.store.read_sync(tenancy.list_sandboxes):
        console.print(f"{sb.name}\t{sb.type}\t{sb.id}")
    rt.close()


@app.command()
def worker(role: list[str] = typer.Option(["platform", "journeys", "messaging"], help="roles whose work to run")) -> None:
    """Run the backbone's work (timers, consumers, relay) without serving HTTP, until SIGTERM or Ctrl-C."""
    import asyncio
    import signal

    rt = _runtime(tuple(role))
    rt.migrate()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        console.print(f"worker {rt.backbone.owner} running {len(rt.backbone.appliers)} subscription(s)")
        await rt.backbone.run(stop)

    try:
        asyncio.run(main())
    finally:
        rt.close()


backbone_app = typer.Typer(no_args_is_help=True, help="The event backbone: lag, parked keys, replay, retention.")
app.add_typer(backbone_app, name="backbone")


@backbone_app.command("status")
def backbone_status(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Per subscription: lag, oldest pending age, parked keys, redeliveries; and the timers."""
    import orjson
    from rich.table import Table

    rt = _runtime()
    status = rt.backbone.status()
    rt.close()
    if as_json:
        print(orjson.dumps(status).decode())
        return
    table = Table("consumer", "stream", "offset", "lag", "oldest pending (s)", "parked")
    for s in status["subscriptions"]:
        table.add_row(s["consumer"], s["stream"], str(s["offset"]), str(s["lag"]),
                      f"{s['oldestPendingSeconds']:.1f}", str(s["parked"]))
    console.print(table)
    tm = status["timers"]
    console.print(f"timers: {tm['pending']} pending, {tm['due']} due now, "
                  f"lateness max {tm['maxLatenessMs']} ms, avg {tm['avgLatenessMs']:.0f} ms")


@backbone_app.command("parked")
def backbone_parked(consumer: str = typer.Option(None, help="only this consumer")) -> None:
    """Keys whose next message kept failing, with the error."""
    from rich.table import Table

    from wayline.kernel.consumers import parked_keys

    rt = _runtime()
    rows = rt.store.read_sync(lambda c: parked_keys(c, consumer=consumer, limit=1000))
    rt.close()
    table = Table("consumer", "stream", "key", "seq", "attempts", "error")
    for r in rows:
        table.add_row(r["consumer"], r["stream"], r["key"], str(r["seq"]), str(r["attempts"]), r["error"])
    console.print(table if rows else "no parked keys")


@backbone_app.command("prune")
def backbone_prune(hours: float = typer.Option(None, help="retention in hours (default: the setting "
                                                           "backbone_retention_hours)")) -> None:
    """Delete outbox messages every subscriber has applied, and fired timers, older than the retention."""
    rt = _runtime()
    if hours is not None:
        if hours <= 0:
            rt.close()
            err.print("[red]--hours must be above 0 (the setting backbone_retention_hours=0 keeps everything)[/]")
            raise typer.Exit(2)
        rt.backbone.retention_ms = int(hours * 3_600_000)
    if not rt.backbone.retention_ms:
        rt.close()
        console.print("retention is off (backbone_retention_hours = 0): nothing deleted")
        return
    out = rt.backbone.prune_all()
    rt.close()
    console.print(f"deleted {out['messages']} message(s) and {out['timers']} fired timer(s)")


@backbone_app.command("replay")
def backbone_replay(consumer: str = typer.Option(...), key: str = typer.Option(...)) -> None:
    """Unpark a key and apply what waited for it, in order."""
    rt = _runtime()
    out = rt.backbone.replay(consumer, key)
    rt.close()
    if not out["found"]:
        err.print(f"[red]no parked key {key!r} for consumer {consumer!r}[/]")
        raise typer.Exit(1)
    console.print(f"replayed {out['replayed']} message(s)" + (" — parked again" if out["parked"] else ""))
    if out["parked"]:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
