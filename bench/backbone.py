"""Event-backbone benchmark: keyed messages through outbox → (bus) → inbox with a trivial effect; timers.

    wayline bench backbone --json            (or: python bench/backbone.py --json)

Embedded (always): a fresh SQLite file in a temporary directory; one process runs the Backbone
(`Backbone.run` on the store's writer thread) and the producers, like the embedded installation does.
PostgreSQL + NATS (when WAYLINE_BENCH_POSTGRES_URL or WAYLINE_TEST_POSTGRES_URL names an admin URL and
the NATS adapter exists): a database created for the run and dropped at the end, a nats-server the
benchmark starts on a free port with its own store directory (or WAYLINE_BENCH_NATS_URL), producers in
this process and `--pg-workers` worker processes running `Backbone(store, bus=NatsBus(url)).run()`
(relay + NATS consumers + timers).

Every message is added with `outbox.add` inside a producer unit of work (`--batch` messages per unit);
the one subscription's handler inserts one row (message id, latency) in the applying transaction.
Latency per message = the handler's wall clock − the message's `created_ms` (set when its unit ran;
milliseconds, so figures carry up to 1 ms of rounding), so it spans unit → commit → (relay → NATS →)
apply; the apply's own commit follows within the same group (well under a millisecond on SQLite).

Phases, per mode:
  saturated  `--messages` messages from `--producers` concurrent producers as fast as they go:
             messages_per_s = messages / (last applied − first created); p50/p99 there are queueing.
  paced      open loop at half the mode's target rate for `--paced-seconds` (units of `--paced-batch`):
             the p99 the issue's target ("p99 < 50 ms at half those rates") is about.
  timers     `--timers` timers, all already due, written in one transaction; then the backbone fires
             them (claim under a lease, compare-and-set, "timer fired" into the key's stream):
             timers_per_s = timers / (last fired − start); timer_messages_applied_per_s includes
             applying the fired messages.

One JSON object on stdout ({"embedded": {...}, "postgresql_nats": {...}, "targets", "meets_targets",
"machine", …}); progress on stderr. `--profile DIR` runs the embedded mode under pyinstrument (event
loop + writer thread) and writes DIR/embedded-<phase>-{loop,writer}.{txt,html} and -hotspots.json.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from wayline.kernel.localnet import free_port as _free_port, nats_server_binary, wait_port as _wait_port

TARGETS = {
    "embedded": {"messages_per_s": 10_000, "timers_per_s": 5_000, "paced_p99_ms": 50.0},
    "postgresql_nats": {"messages_per_s": 3_000, "paced_p99_ms": 50.0},
}
STREAM = "bench"
CONSUMER = "bench-effects"
HERE = Path(__file__).resolve().parent


def log(*parts: Any) -> None:
    print(*parts, file=sys.stderr, flush=True)


def _sibling(name: str) -> Any:
    """Another script of bench/ (the profile helpers live in ingest.py)."""
    mod = sys.modules.get(f"wayline_bench_{name}")
    if mod is not None:
        return mod
    spec = importlib.util.spec_from_file_location(f"wayline_bench_{name}", HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


# -- the harness's table and the handler -----------------------------------------------------------------

def _effects_table() -> Any:
    import sqlalchemy as sa

    md = sa.MetaData()
    return md, sa.Table("bench_effects", md,
                        sa.Column("message_id", sa.BigInteger, primary_key=True, autoincrement=False),
                        sa.Column("created_ms", sa.BigInteger, nullable=False),
                        sa.Column("applied_ms", sa.Float, nullable=False))


MD, EFFECTS = _effects_table()
# Built once: SQLAlchemy caches the compiled form of a statement object, and building a fresh
# `insert().values(…)` per call costs more than the insert itself (see docs/backbone.md, figures).
INSERT_EFFECT = EFFECTS.insert()


def handler(conn: Any, m: Any) -> None:
    """The trivial effect: one row per message, with when it was created and when it was applied."""
    conn.execute(INSERT_EFFECT, {"message_id": m.id, "created_ms": m.created_ms, "applied_ms": time.time() * 1000.0})


def handle_many(conn: Any, msgs: list[Any]) -> None:
    """The same effect for a batch's ready messages in one multi-row insert (`subscribe(handle_many=)`)."""
    now = time.time() * 1000.0
    conn.execute(INSERT_EFFECT, [{"message_id": m.id, "created_ms": m.created_ms, "applied_ms": now} for m in msgs])


def write_unit(conn: Any, msgs: list[tuple[str, int]]) -> tuple[int, int]:
    """A producer's unit of work: its messages into the outbox; returns (first id, last id)."""
    from wayline.kernel import outbox
    from wayline.kernel.store import now_ms

    added = outbox.add_many(conn, [(STREAM, key, "bench", {"i": i}) for key, i in msgs], now_ms=now_ms())
    return added[0].id, added[-1].id


def schedule_timers(conn: Any, n: int, keys: int, due_ms: int) -> tuple[int, int]:
    """`n` timers, all due at `due_ms`, in one statement (an executemany)."""
    import sqlalchemy as sa

    from wayline.kernel import tables as t

    rows = [{"stream": STREAM, "key": f"k{i % keys}", "type": "bench.timer", "payload": {"i": i}, "due_ms": due_ms,
             "created_ms": due_ms} for i in range(n)]
    conn.execute(t.timers.insert(), rows)
    lo, hi = conn.execute(sa.select(sa.func.min(t.timers.c.id), sa.func.max(t.timers.c.id))).one()
    return int(lo), int(hi)


def prepare_database(url: str) -> None:
    from wayline.kernel.store import make_engine
    from wayline.migrations import migrate

    migrate(url)
    eng = make_engine(url)
    MD.create_all(eng)
    eng.dispose()


# -- measuring -------------------------------------------------------------------------------------------

def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, round(q / 100.0 * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


@dataclass
class Options:
    messages: int = 50_000
    batch: int = 100
    producers: int = 4
    keys: int = 1_000
    paced_seconds: float = 5.0
    paced_batch: int = 10
    timers: int = 50_000
    warmup: int = 2_000
    pg_workers: int = 1
    pg_runners: int = 1
    handler: str = "one"
    backbone_batch: int = 500
    timeout_s: float = 300.0
    profile: Path | None = None
    phases: tuple[str, ...] = ("saturated", "paced", "timers")


class Producer:
    """Writes units of keyed messages through a Store; remembers the id range it produced."""

    def __init__(self, store: Any, keys: int, seed: int = 7) -> None:
        self.store = store
        self.keys = keys
        self.rng = random.Random(seed)
        self.counter = 0
        self.lo: int | None = None
        self.hi = 0
        self.written = 0
        self.after_unit: Any = None  # embedded: Backbone.notify

    def _unit(self, size: int) -> list[tuple[str, int]]:
        out = []
        for _ in range(size):
            out.append((f"k{self.rng.randrange(self.keys)}", self.counter))
            self.counter += 1
        return out

    def reset(self) -> None:
        self.lo, self.hi, self.written = None, 0, 0

    async def one(self, size: int) -> None:
        lo, hi = await self.store.write(write_unit, self._unit(size))
        self.lo = lo if self.lo is None else min(self.lo, lo)
        self.hi = max(self.hi, hi)
        self.written += size
        if self.after_unit is not None:
            self.after_unit()

    async def saturate(self, n: int, batch: int, concurrency: int) -> None:
        left = [n]

        async def loop() -> None:
            while left[0] > 0:
                size = min(batch, left[0])
                left[0] -= size
                await self.one(size)

        await asyncio.gather(*(loop() for _ in range(concurrency)))

    async def paced(self, rate: float, seconds: float, batch: int) -> None:
        """Open loop: unit i starts at t0 + i·batch/rate, whether or not earlier units are done."""
        units = max(1, int(rate * seconds / batch))
        interval = batch / rate
        t0 = time.perf_counter()
        tasks = []
        for i in range(units):
            delay = t0 + i * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self.one(batch)))
        await asyncio.gather(*tasks)


async def wait_applied(store: Any, lo: int, hi: int, expected: int, timeout_s: float) -> int:
    import sqlalchemy as sa

    def q(conn: Any) -> int:
        return conn.execute(sa.select(sa.func.count()).select_from(EFFECTS)
                            .where(EFFECTS.c.message_id.between(lo, hi))).scalar_one()

    deadline = time.monotonic() + timeout_s
    while True:
        n = await store.read(q)
        if n >= expected or time.monotonic() > deadline:
            return n
        await asyncio.sleep(0.02)


async def latencies(store: Any, lo: int, hi: int) -> tuple[list[float], float]:
    """Sorted latencies (ms) of the messages lo … hi, and when the last of them was applied (epoch ms)."""
    import sqlalchemy as sa

    rows = await store.read(lambda c: c.execute(sa.select(EFFECTS.c.created_ms, EFFECTS.c.applied_ms).where(
        EFFECTS.c.message_id.between(lo, hi))).all())
    return sorted(a - c for c, a in rows), max((a for _, a in rows), default=0.0)


async def relay_split(store: Any, lo: int, hi: int) -> dict[str, float]:
    """Scale-out: where the latency goes — created → marked published by the relay (after JetStream's
    ack), and marked published → applied (NATS delivery, the consumer's apply; may be negative)."""
    import sqlalchemy as sa

    from wayline.kernel import tables as t

    rows = await store.read(lambda c: c.execute(
        sa.select(EFFECTS.c.created_ms, t.outbox.c.published_ms, EFFECTS.c.applied_ms)
        .join(t.outbox, t.outbox.c.id == EFFECTS.c.message_id)
        .where(EFFECTS.c.message_id.between(lo, hi), t.outbox.c.published_ms.is_not(None))).all())
    relay = sorted(p - c for c, p, _ in rows)
    after = sorted(a - p for _, p, a in rows)
    return {"relayed_p50_ms": round(percentile(relay, 50), 2), "relayed_p99_ms": round(percentile(relay, 99), 2),
            "published_to_applied_p50_ms": round(percentile(after, 50), 2),
            "published_to_applied_p99_ms": round(percentile(after, 99), 2)}


def summary(lat: list[float], n: int, seconds: float, cpu_s: float | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"messages": n, "seconds": round(seconds, 3),
                           "messages_per_s": round(n / seconds, 1) if seconds > 0 else None,
                           "p50_ms": round(percentile(lat, 50), 2), "p90_ms": round(percentile(lat, 90), 2),
                           "p99_ms": round(percentile(lat, 99), 2), "max_ms": round(lat[-1], 2) if lat else None}
    if cpu_s is not None and n:
        out["cpu_s"] = round(cpu_s, 3)
        out["cpu_us_per_message"] = round(cpu_s / n * 1e6, 1)
    return out


async def message_phase(store: Any, prod: Producer, opts: Options, *, paced_rate: float | None,
                        n: int | None = None) -> dict[str, Any]:
    prod.reset()
    cpu0 = time.process_time()
    t0 = time.time() * 1000.0
    if paced_rate is None:
        await prod.saturate(n or opts.messages, opts.batch, opts.producers)
    else:
        await prod.paced(paced_rate, opts.paced_seconds, opts.paced_batch)
    produced_s = time.time() * 1000.0 - t0
    assert prod.lo is not None
    got = await wait_applied(store, prod.lo, prod.hi, prod.written, opts.timeout_s)
    cpu = time.process_time() - cpu0
    lat, last_applied = await latencies(store, prod.lo, prod.hi)
    # From the start of the first unit to the last message's effect, both on the wall clock.
    seconds = (last_applied - t0) / 1000.0
    out = summary(lat, got, seconds)
    out["produced_per_s"] = round(prod.written / (produced_s / 1000.0), 1) if produced_s > 0 else None
    out["complete"] = got == prod.written
    out["process_cpu_s"] = round(cpu, 3)
    if not store.is_sqlite:
        out.update(await relay_split(store, prod.lo, prod.hi))
    if paced_rate is not None:
        out["offered_per_s"] = paced_rate
    return out


async def timer_phase(store: Any, opts: Options) -> dict[str, Any]:
    import sqlalchemy as sa

    from wayline.kernel import tables as t
    from wayline.kernel.store import now_ms

    t_sched = time.perf_counter()
    lo, hi = await store.write(schedule_timers, opts.timers, opts.keys, now_ms() - 1)
    schedule_s = time.perf_counter() - t_sched
    start = now_ms()

    def pending(conn: Any) -> tuple[int, int | None]:
        n, last = conn.execute(sa.select(sa.func.count(t.timers.c.fired_ms), sa.func.max(t.timers.c.fired_ms))
                               .where(t.timers.c.id.between(lo, hi))).one()
        return hi - lo + 1 - n, last

    deadline = time.monotonic() + opts.timeout_s
    while True:
        left, last_fired = await store.read(pending)
        if left == 0 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    fired = opts.timers - left

    def fired_range(conn: Any) -> tuple[int, int]:
        q = sa.select(sa.func.min(t.outbox.c.id), sa.func.max(t.outbox.c.id)).where(
            t.outbox.c.stream == STREAM, t.outbox.c.type == "timer.fired", t.outbox.c.created_ms >= start)
        a, b = conn.execute(q).one()
        return int(a or 0), int(b or 0)

    mlo, mhi = await store.read(fired_range)
    applied = await wait_applied(store, mlo, mhi, fired, opts.timeout_s) if mhi else 0
    done = now_ms()
    fire_s = max(1, (last_fired or done) - start) / 1000.0
    lat = (await latencies(store, mlo, mhi))[0] if mhi else []
    return {"timers": opts.timers, "fired": fired, "schedule_s": round(schedule_s, 3),
            "fire_s": round(fire_s, 3), "timers_per_s": round(fired / fire_s, 1),
            "applied": applied, "timer_messages_applied_per_s": round(applied / max(0.001, (done - start) / 1000), 1),
            "fired_to_applied_p99_ms": round(percentile(lat, 99), 2) if lat else None}


# -- embedded ------------------------------------------------------------------------------------------

async def run_embedded(db_url: str, opts: Options) -> dict[str, Any]:
    from wayline.kernel.backbone import Backbone
    from wayline.kernel.store import Store

    prepare_database(db_url)
    profilers = Profilers(opts.profile, "embedded") if opts.profile else None  # before the writer starts
    store = Store(db_url)
    bb = Backbone(store, batch=opts.backbone_batch)
    applier = bb.subscribe(CONSUMER, STREAM, handler, handle_many=handle_many if opts.handler == "many" else None)
    stop = asyncio.Event()
    runner = asyncio.create_task(bb.run(stop))
    prod = Producer(store, opts.keys)
    prod.after_unit = bb.notify
    result: dict[str, Any] = {"mode": "embedded", "backend": "sqlite", "handler": opts.handler}
    try:
        await message_phase(store, prod, opts, paced_rate=None, n=opts.warmup)
        for phase in opts.phases:
            store.group_sizes.clear()
            if phase == "saturated":
                r = await message_phase(store, prod, opts, paced_rate=None)
            elif phase == "paced":
                r = await message_phase(store, prod, opts,
                                        paced_rate=TARGETS["embedded"]["messages_per_s"] / 2)
            else:
                r = await timer_phase(store, opts)
            sizes = list(store.group_sizes)
            r["mean_commit_group"] = round(sum(sizes) / len(sizes), 2) if sizes else None
            result[phase] = r
            log(f"embedded {phase}: {r}")
    finally:
        stop.set()
        bb.notify()
        await runner
        store.close()  # joins the writer thread, whose profiler stops with it
        if profilers:
            profilers.write(f"embedded-{'+'.join(opts.phases)}")
    result["applied_total"] = applier.applied
    return headline(result, "embedded")


def headline(result: dict[str, Any], mode: str) -> dict[str, Any]:
    """The figures the issue names, at the top of the mode's object."""
    sat, paced, tm = result.get("saturated", {}), result.get("paced", {}), result.get("timers", {})
    result.update({"messages_per_s": sat.get("messages_per_s"), "p50_ms": sat.get("p50_ms"),
                   "p99_ms": sat.get("p99_ms"), "paced_rate_per_s": paced.get("offered_per_s"),
                   "paced_p50_ms": paced.get("p50_ms"), "paced_p99_ms": paced.get("p99_ms"),
                   "timers_per_s": tm.get("timers_per_s")})
    tgt = TARGETS[mode]
    result["meets_targets"] = {k: (result.get(k) is not None and
                                   (result[k] < v if k.endswith("_ms") else result[k] >= v))
                               for k, v in tgt.items()}
    return result


class Profilers:
    """pyinstrument on the event loop and on the store's writer thread, for the whole embedded run.

    In the embedded mode the backbone's work (timers, consumer reads, applies) and the producers' units
    all run on the writer thread; the loop only schedules. For one phase's profile, pass --phases.
    """

    def __init__(self, out: Path, mode: str) -> None:
        from wayline.kernel.store import Store

        self.out = out
        self.mode = mode
        self.ingest = _sibling("ingest")
        self.writer_sessions: list[Any] = []
        self._original = Store._writer_loop
        original, sessions, ingest = self._original, self.writer_sessions, self.ingest

        def profiled(store_self: Any) -> None:
            prof = ingest.new_profiler()
            prof.start()
            try:
                original(store_self)
            finally:
                sessions.append(prof.stop())

        Store._writer_loop = profiled  # type: ignore[method-assign]
        self.loop_prof = ingest.new_profiler()
        self.loop_prof.start()

    def write(self, name: str) -> None:
        from wayline.kernel.store import Store

        Store._writer_loop = self._original  # type: ignore[method-assign]
        loop_session = self.loop_prof.stop()
        self.ingest.write_profiles(self.out / name, loop_session, self.writer_sessions)


# -- PostgreSQL + NATS -------------------------------------------------------------------------------------

def postgres_admin_url() -> str | None:
    return os.environ.get("WAYLINE_BENCH_POSTGRES_URL") or os.environ.get("WAYLINE_TEST_POSTGRES_URL") or None


def nats_mode_missing() -> str:
    import inspect

    try:
        from wayline.kernel.bus import NatsBus  # noqa: F401
    except ImportError:
        return "the NATS adapter (wayline.kernel.bus.NatsBus) does not exist"
    from wayline.kernel.backbone import Backbone

    if "bus" not in inspect.signature(Backbone).parameters:
        return "Backbone has no NATS mode (no `bus` parameter)"
    return ""








def worker_main(args: argparse.Namespace) -> int:
    """A scale-out worker: relay + NATS consumer + timers, until SIGTERM."""
    from wayline.kernel.backbone import Backbone
    from wayline.kernel.bus import NatsBus
    from wayline.kernel.store import Store

    async def amain() -> None:
        prof = Profilers(Path(args.profile).parent, "worker") if args.profile else None  # before the writers start
        store = Store(args.db)
        bb = Backbone(store, bus=NatsBus(args.nats, prefix=args.prefix), runners=args.runners)
        bb.subscribe(CONSUMER, STREAM, handler, handle_many=handle_many if args.handler == "many" else None)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        try:
            await bb.run(stop)
        finally:
            store.close()  # joins the writer threads, whose profilers stop with them
            if prof is not None:
                prof.write(Path(args.profile).name)

    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(amain())
    return 0


async def run_postgres_nats(db_url: str, nats_url: str, prefix: str, opts: Options, workdir: Path) -> dict[str, Any]:
    from wayline.kernel.store import Store

    prepare_database(db_url)
    procs = start_workers(db_url, nats_url, prefix, opts, workdir)
    store = Store(db_url)
    prod = Producer(store, opts.keys)
    result: dict[str, Any] = {"mode": "postgresql_nats", "backend": "postgresql", "workers": opts.pg_workers,
                              "runners_per_worker": opts.pg_runners, "handler": opts.handler}
    try:
        await message_phase(store, prod, opts, paced_rate=None, n=opts.warmup)
        for phase in opts.phases:
            c0 = [proc_cpu(p.pid) for p in procs]
            if phase == "saturated":
                r = await message_phase(store, prod, opts, paced_rate=None)
            elif phase == "paced":
                r = await message_phase(store, prod, opts,
                                        paced_rate=TARGETS["postgresql_nats"]["messages_per_s"] / 2)
            else:
                r = await timer_phase(store, opts)
            r["worker_cpu_s"] = round(sum(proc_cpu(p.pid) - a for p, a in zip(procs, c0)), 3)
            result[phase] = r
            log(f"postgresql_nats {phase}: {r}")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        store.close()
    return headline(result, "postgresql_nats")


def start_workers(db_url: str, nats_url: str, prefix: str, opts: Options,
                  workdir: Path) -> list[subprocess.Popen[bytes]]:
    procs = []
    for i in range(opts.pg_workers):
        argv = [sys.executable, str(HERE / "backbone.py"), "--worker", "--db", db_url, "--nats", nats_url,
                "--prefix", prefix, "--runners", str(opts.pg_runners), "--handler", opts.handler]
        if opts.profile:
            argv += ["--worker-profile", str(opts.profile / f"postgresql_nats-worker{i}")]
        with open(workdir / f"worker{i}.log", "wb") as err:
            procs.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err))
    return procs


def proc_cpu(pid: int) -> float:
    """user + system CPU seconds of a process, from /proc (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


class PostgresDatabase:
    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.name = f"wl_bench_bb_{uuid.uuid4().hex[:10]}"

    def _admin(self) -> Any:
        import sqlalchemy as sa

        from wayline.kernel.store import normalise_url

        return sa.create_engine(normalise_url(self.admin_url), isolation_level="AUTOCOMMIT")

    def __enter__(self) -> str:
        import sqlalchemy as sa

        eng = self._admin()
        with eng.connect() as c:
            c.execute(sa.text(f'CREATE DATABASE "{self.name}"'))
        eng.dispose()
        head, _, tail = self.admin_url.partition("?")
        return head.rsplit("/", 1)[0] + "/" + self.name + (("?" + tail) if tail else "")

    def __exit__(self, *exc: object) -> None:
        import sqlalchemy as sa

        eng = self._admin()
        with eng.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        eng.dispose()


class NatsServer:
    def __init__(self, binary: str, workdir: Path) -> None:
        self.port = _free_port()
        with open(workdir / "nats.log", "wb") as err:
            self.proc = subprocess.Popen([binary, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd",
                                          str(workdir / "nats-store")], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err)
        if not _wait_port(self.port, 15):
            self.stop()
            raise RuntimeError("nats-server did not start")
        self.url = f"nats://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- main ----------------------------------------------------------------------------------------------

def machine() -> dict[str, Any]:
    return _sibling("ingest").machine()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    d = Options()
    p = argparse.ArgumentParser(prog="wayline bench backbone", description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true", help="print only the JSON object on stdout (one line)")
    p.add_argument("--messages", type=int, default=d.messages, help=f"saturated phase (default {d.messages})")
    p.add_argument("--batch", type=int, default=d.batch, help=f"messages per producer unit (default {d.batch})")
    p.add_argument("--producers", type=int, default=d.producers, help="concurrent producers, saturated phase")
    p.add_argument("--keys", type=int, default=d.keys, help=f"ordering keys (default {d.keys})")
    p.add_argument("--paced-seconds", type=float, default=d.paced_seconds)
    p.add_argument("--paced-batch", type=int, default=d.paced_batch, help="messages per unit, paced phase")
    p.add_argument("--timers", type=int, default=d.timers, help=f"timers of the timer phase (default {d.timers})")
    p.add_argument("--backbone-batch", type=int, default=d.backbone_batch,
                   help="Backbone(batch=…): messages per consumer read, timers per claim (default 500)")
    p.add_argument("--pg-workers", type=int, default=d.pg_workers, help="worker processes on PostgreSQL + NATS")
    p.add_argument("--pg-runners", type=int, default=d.pg_runners,
                   help="consumer runners per worker process (Backbone(runners=…))")
    p.add_argument("--phases", default=",".join(d.phases), help="comma-separated: saturated,paced,timers")
    p.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL + NATS even when configured")
    p.add_argument("--postgres-only", action="store_true", help="skip the embedded mode")
    p.add_argument("--profile", type=Path, default=None, metavar="DIR",
                   help="pyinstrument reports into DIR (embedded: loop + writer; scale-out: each worker)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--db", help=argparse.SUPPRESS)
    p.add_argument("--nats", help=argparse.SUPPRESS)
    p.add_argument("--prefix", default="wayline", help=argparse.SUPPRESS)
    p.add_argument("--runners", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--handler", choices=("one", "many"), default=d.handler,
                   help="the effect per message (`subscribe(handler)`, default) or per ready batch "
                        "(`subscribe(handle_many=)`: one multi-row insert)")
    p.add_argument("--worker-profile", dest="profile_worker", default="", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        args.profile = args.profile_worker
        return worker_main(args)
    phases = tuple(x.strip() for x in args.phases.split(",") if x.strip())
    if not phases or any(x not in ("saturated", "paced", "timers") for x in phases):
        log("phases: saturated, paced, timers")
        return 2
    opts = Options(messages=args.messages, batch=args.batch, producers=args.producers, keys=args.keys,
                   paced_seconds=args.paced_seconds, paced_batch=args.paced_batch, timers=args.timers,
                   pg_workers=args.pg_workers, pg_runners=args.pg_runners, handler=args.handler, phases=phases, backbone_batch=args.backbone_batch,
                   profile=args.profile.resolve() if args.profile else None)
    if opts.profile:
        opts.profile.mkdir(parents=True, exist_ok=True)
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    t0 = time.perf_counter()
    load_before = os.getloadavg()
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="wayline-bench-backbone-") as tmp:
        work = Path(tmp)
        if not args.postgres_only:
            result["embedded"] = asyncio.run(run_embedded(f"sqlite:///{work / 'wayline.db'}", opts))
        pg_url = None if args.no_postgres else postgres_admin_url()
        missing = nats_mode_missing()
        binary = nats_server_binary()
        external = os.environ.get("WAYLINE_BENCH_NATS_URL")
        if args.no_postgres:
            pass
        elif not pg_url:
            result["postgresql_nats"] = {"mode": "postgresql_nats", "skipped": "set WAYLINE_BENCH_POSTGRES_URL "
                                         "(or WAYLINE_TEST_POSTGRES_URL) to a PostgreSQL admin URL"}
        elif missing:
            result["postgresql_nats"] = {"mode": "postgresql_nats", "skipped": missing}
        elif not binary and not external:
            result["postgresql_nats"] = {"mode": "postgresql_nats",
                                         "skipped": "no nats-server binary and no WAYLINE_BENCH_NATS_URL"}
        else:
            nats = None if external else NatsServer(binary, work)  # type: ignore[arg-type]
            # On a shared server, a prefix of its own keeps this run's streams (and their Nats-Msg-Id
            # duplicate windows: outbox ids restart at 1 in every fresh database) apart from others'.
            prefix = "wlbench" + uuid.uuid4().hex[:8] if external else "wayline"
            try:
                with PostgresDatabase(pg_url) as db_url:
                    result["postgresql_nats"] = asyncio.run(run_postgres_nats(
                        db_url, external or nats.url, prefix, opts, work))  # type: ignore[union-attr]
            finally:
                if nats is not None:
                    nats.stop()
        if "postgresql_nats" in result and "skipped" in result["postgresql_nats"]:
            log(f"PostgreSQL + NATS skipped: {result['postgresql_nats']['skipped']}")
    result["targets"] = TARGETS
    result["meets_targets"] = {m: r["meets_targets"] for m, r in result.items()
                               if isinstance(r, dict) and "meets_targets" in r}
    result["machine"] = machine()
    result["machine"]["loadavg_before"] = [round(x, 2) for x in load_before]
    result["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
