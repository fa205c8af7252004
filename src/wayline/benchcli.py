"""`wayline bench …`: runs the benchmark scripts of the repository's bench/ directory.

The scripts live outside the package (they are not shipped in a wheel), so they are found next to the
source tree of an editable install: the first parent of this package that holds bench/.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import typer

bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks (from the repository's bench/ directory).")


def bench_dir() -> Path | None:
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "bench" / "ingest.py").is_file():
            return parent / "bench"
    return None


def _load(name: str) -> ModuleType:
    where = bench_dir()
    if where is None:
        typer.echo("wayline bench needs the repository's bench/ directory (bench/ingest.py), which is not next "
                   "to this installation; run it from a source checkout installed with `pip install -e .`",
                   err=True)
        raise typer.Exit(2)
    spec = importlib.util.spec_from_file_location(f"wayline_bench_{name}", where / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@bench_app.command("ingest")
def ingest(
    json_only: bool = typer.Option(False, "--json", help="print only the JSON object on stdout"),
    seconds: float = typer.Option(10.0, help="measured seconds per phase"),
    warmup: float = typer.Option(1.5, help="warm-up seconds per phase"),
    concurrency: int = typer.Option(64, help="connections of the single-message phase"),
    batch_concurrency: int = typer.Option(8, help="connections of the batched phase"),
    batch_size: int = typer.Option(100, help="messages per batch request"),
    phases: str = typer.Option("batched,single", help="comma-separated phases: batched,single"),
    no_postgres: bool = typer.Option(False, "--no-postgres", help="skip PostgreSQL even when its URL is set"),
    postgres_only: bool = typer.Option(False, "--postgres-only", help="skip SQLite"),
    server_gc: str = typer.Option("default", help="experiment: default, freeze or tuned garbage collection in the server"),
    profile: str = typer.Option("", metavar="DIR", help="profile the server with pyinstrument; reports into DIR"),
    py_spy: str = typer.Option("", "--py-spy", metavar="DIR",
                               help="sample the server with py-spy during each measured window; reports into DIR"),
) -> None:
    """Streaming ingestion over HTTP into a real server (SQLite, and PostgreSQL when its URL is set)."""
    argv = ["--seconds", str(seconds), "--warmup", str(warmup), "--concurrency", str(concurrency),
            "--batch-concurrency", str(batch_concurrency), "--batch-size", str(batch_size), "--phases", phases]
    if json_only:
        argv.append("--json")
    if no_postgres:
        argv.append("--no-postgres")
    if postgres_only:
        argv.append("--postgres-only")
    if server_gc != "default":
        argv += ["--server-gc", server_gc]
    if profile:
        argv += ["--profile", profile]
    if py_spy:
        argv += ["--py-spy", py_spy]
    raise typer.Exit(_load("ingest").main(argv))


@bench_app.command("backbone")
def backbone(
    json_only: bool = typer.Option(False, "--json", help="print only the JSON object on stdout"),
    messages: int = typer.Option(50_000, help="messages of the saturated phase"),
    batch: int = typer.Option(100, help="messages per producer unit of work"),
    producers: int = typer.Option(4, help="concurrent producers of the saturated phase"),
    keys: int = typer.Option(1_000, help="ordering keys"),
    paced_seconds: float = typer.Option(5.0, help="seconds of the paced phase (half the target rate)"),
    timers: int = typer.Option(50_000, help="timers of the timer phase, all due at once"),
    pg_workers: int = typer.Option(1, help="worker processes on PostgreSQL + NATS"),
    phases: str = typer.Option("saturated,paced,timers", help="comma-separated phases"),
    no_postgres: bool = typer.Option(False, "--no-postgres", help="skip PostgreSQL + NATS even when configured"),
    postgres_only: bool = typer.Option(False, "--postgres-only", help="skip the embedded mode"),
    profile: str = typer.Option("", metavar="DIR", help="pyinstrument reports into DIR"),
) -> None:
    """Outbox → (NATS) → inbox throughput and latency, and timers fired per second (embedded, and
    PostgreSQL + NATS when WAYLINE_BENCH_POSTGRES_URL or WAYLINE_TEST_POSTGRES_URL is set)."""
    argv = ["--messages", str(messages), "--batch", str(batch), "--producers", str(producers), "--keys", str(keys),
            "--paced-seconds", str(paced_seconds), "--timers", str(timers), "--pg-workers", str(pg_workers),
            "--phases", phases]
    if json_only:
        argv.append("--json")
    if no_postgres:
        argv.append("--no-postgres")
    if postgres_only:
        argv.append("--postgres-only")
    if profile:
        argv += ["--profile", profile]
    raise typer.Exit(_load("backbone").main(argv))


@bench_app.command("profile")
def profile(
    json_only: bool = typer.Option(False, "--json", help="print only the JSON object on stdout"),
    profiles: int = typer.Option(1_000_000, help="profiles to build (3 records each, from 2 datasets)"),
    chunk: int = typer.Option(1_000, help="records per unit of work"),
    lookups: int = typer.Option(20_000, help="lookups of the stored merged view"),
    explain_lookups: int = typer.Option(-1, help="lookups with explain=True, merged on read (default: lookups / 10)"),
    inflight: int = typer.Option(1, help="units queued to the writer at once (2: preparing overlaps storing)"),
    seed: int = typer.Option(7, help="generator seed"),
    db: str = typer.Option("", metavar="PATH", help="SQLite file to build (must not exist; default: a temporary one)"),
    keep: bool = typer.Option(False, "--keep", help="keep the database afterwards"),
    no_table_sizes: bool = typer.Option(False, "--no-table-sizes", help="skip the per-table sizes (dbstat scan)"),
    postgres_url: str = typer.Option("", metavar="URL", help="also run on PostgreSQL (an admin URL); skipped by default"),
    postgres_only: bool = typer.Option(False, "--postgres-only", help="with --postgres-url: skip SQLite"),
    profile_dir: str = typer.Option("", metavar="DIR", help="pyinstrument over the build phase; reports into DIR"),
) -> None:
    """Identity stitching and merged profiles: build N profiles through ingestion, then time lookups."""
    argv = ["--profiles", str(profiles), "--chunk", str(chunk), "--lookups", str(lookups), "--inflight", str(inflight),
            "--seed", str(seed)]
    if explain_lookups >= 0:
        argv += ["--explain-lookups", str(explain_lookups)]
    if json_only:
        argv.append("--json")
    if db:
        argv += ["--db", db]
    if keep:
        argv.append("--keep")
    if no_table_sizes:
        argv.append("--no-table-sizes")
    if postgres_url:
        argv += ["--postgres-url", postgres_url]
    if postgres_only:
        argv.append("--postgres-only")
    if profile_dir:
        argv += ["--profile-dir", profile_dir]
    raise typer.Exit(_load("profile").main(argv))


@bench_app.command("segments")
def segments(
    json_only: bool = typer.Option(False, "--json", help="print only the JSON object on stdout"),
    profiles: int = typer.Option(1_000_000, help="stored profiles to generate"),
    streaming_definitions: int = typer.Option(100, help="continuous definitions re-evaluated per change"),
    changes: int = typer.Option(2_000, help="profile changes measured for streaming"),
    seed: int = typer.Option(11, help="generator seed"),
) -> None:
    """Segmentation: 10 definitions in batch over N profiles, 100 continuous ones per profile change."""
    argv = ["--profiles", str(profiles), "--streaming-definitions", str(streaming_definitions),
            "--changes", str(changes), "--seed", str(seed)]
    if json_only:
        argv.append("--json")
    raise typer.Exit(_load("segments").main(argv))
