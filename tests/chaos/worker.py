"""A worker process of the crash harness: `python -m tests.chaos.worker --db URL [--nats URL] …`.

It is one installation's worth of work: a producer that writes the units of the plan it owns
(unit % workers == worker id) into the outbox, and a Backbone whose one subscription records each
applied message as a row of `chaos_effects` in the applying transaction. Embedded (no --nats) it is
the whole installation: producer, timers and consumer in one process on a SQLite file. With --nats
it runs the backbone in scale-out mode (relay to NATS JetStream, NATS consumers) on PostgreSQL.

The harness kills it with SIGKILL whenever it likes; SIGTERM stops it cleanly. An error that escapes
the backbone ends the process with exit code 3 and a traceback on stderr (a supervisor restarts it,
and the harness counts it as an unexpected exit).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.chaos.model import CONSUMER, MSG, STREAM, TIMER, Plan, effects, units
from wayline.kernel import outbox, timers
from wayline.kernel.backbone import Backbone
from wayline.kernel.store import Store, now_ms


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.chaos.worker")
    p.add_argument("--db", required=True)
    p.add_argument("--nats", default="")
    p.add_argument("--worker-id", type=int, default=0)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--units", type=int, required=True)
    p.add_argument("--keys", type=int, required=True)
    p.add_argument("--mean-unit", type=int, required=True)
    p.add_argument("--timer-every", type=int, required=True)
    p.add_argument("--timer-window-ms", type=int, required=True)
    p.add_argument("--produce-until-ms", type=int, default=0,
                   help="spread the remaining units evenly until this epoch ms (0: as fast as possible)")
    p.add_argument("--lease-ms", type=int, default=2000, help="timer lease")
    p.add_argument("--batch", type=int, default=200, help="backbone batch size")
    p.add_argument("--sabotage", choices=("", "naive-consumer"), default="",
                   help="self-check of the harness: consume with a naive loop (effect, then offset in a file) "
                        "instead of the inbox; the harness must then report duplicates")
    p.add_argument("--ack-wait-s", type=float, default=5.0,
                   help="JetStream ack wait: how soon a killed worker's unacknowledged messages come back")
    return p.parse_args(argv)


def make_handler(worker_id: int) -> Any:
    def handler(conn: sa.Connection, m: outbox.Message) -> None:
        timer_id = m.payload.get("timerId") if m.type == timers.FIRED else None
        conn.execute(effects.insert().values(key=m.key, seq=m.seq, message_id=m.id, type=m.type,
                                             timer_id=timer_id, worker=worker_id, applied_ms=now_ms()))
    return handler


def make_backbone(store: Store, args: argparse.Namespace) -> Backbone:
    kw: dict[str, Any] = {"lease_ms": args.lease_ms, "batch": args.batch}
    if args.nats:
        from wayline.kernel.bus import NatsBus  # the scale-out adapter

        kw["bus"] = NatsBus(args.nats, ack_wait_s=args.ack_wait_s, name=f"chaos-worker-{args.worker_id}")
    return Backbone(store, **kw)


def write_unit(conn: sa.Connection, u: int, worker_id: int, msgs: list[tuple[str, int]],
               timer: tuple[str, int] | None) -> None:
    now = now_ms()
    conn.execute(units.insert().values(unit=u, worker=worker_id, messages=len(msgs), committed_ms=now))
    for key, j in msgs:
        outbox.add(conn, stream=STREAM, key=key, type=MSG, payload={"u": u, "j": j}, now_ms=now)
    if timer is not None:
        key, delay = timer
        timers.schedule(conn, stream=STREAM, key=key, type=TIMER, payload={"u": u}, due_ms=now + delay, now_ms=now)


async def write_with_retry(store: Store, u: int, worker_id: int, msgs: list[tuple[str, int]],
                           timer: tuple[str, int] | None) -> None:
    """Like a client of an API that retries: a unit that failed (the database connection was dropped)
    is written again unless it is there already (then it had committed before the failure)."""
    while True:
        try:
            await store.write(write_unit, u, worker_id, msgs, timer)
            return
        except Exception as exc:  # noqa: BLE001 - whatever failed, the unit is tried again
            print(f"CHAOS_PRODUCER_RETRY id={worker_id} unit={u} {type(exc).__name__}: {str(exc)[:200]}",
                  file=sys.stderr, flush=True)
        await asyncio.sleep(0.2)
        try:
            if await store.read(lambda c: c.execute(sa.select(units.c.unit).where(units.c.unit == u)).first()):
                return
        except Exception as exc:  # noqa: BLE001 - the database is still away: try the unit again
            print(f"CHAOS_PRODUCER_RETRY id={worker_id} unit={u} check failed: {type(exc).__name__}",
                  file=sys.stderr, flush=True)


async def produce(store: Store, bb: Backbone, plan: Plan, args: argparse.Namespace, stop: asyncio.Event) -> None:
    mine = [u for u in range(plan.units) if u % args.workers == args.worker_id]
    done = set(await store.read(lambda c: c.execute(
        sa.select(units.c.unit).where(units.c.worker == args.worker_id)).scalars().all()))
    todo = [u for u in mine if u not in done]
    for i, u in enumerate(todo):
        if stop.is_set():
            return
        msgs, timer = plan.unit(u)
        await write_with_retry(store, u, args.worker_id, msgs, timer)
        bb.notify()
        left_s = (args.produce_until_ms - now_ms()) / 1000
        if left_s > 0:
            await asyncio.sleep(left_s / (len(todo) - i))


async def naive_consumer(store: Store, worker_id: int, offset_file: str, stop: asyncio.Event) -> None:
    """What the inbox exists to prevent: the effect commits, then the offset is saved elsewhere."""
    handler = make_handler(worker_id)
    while not stop.is_set():
        after = int(Path(offset_file).read_text() or 0) if os.path.exists(offset_file) else 0
        batch = await store.read(outbox.read_after, STREAM, after, 50)
        if not batch:
            await asyncio.sleep(0.05)
            continue
        for m in batch:
            await store.write(handler, m)
            Path(offset_file).write_text(str(m.id))


async def announce(store: Store, bb: Backbone, worker_id: int) -> None:
    """Say READY on stderr once the database answers and, with a bus, the consumers are pulling."""
    await store.read(lambda c: c.execute(sa.text("SELECT 1")).scalar())
    bus = getattr(bb, "bus", None)
    while bus is not None and not (bus.connected and getattr(bb, "runners", None)):
        await asyncio.sleep(0.02)
    print(f"CHAOS_WORKER_READY id={worker_id} pid={os.getpid()}", file=sys.stderr, flush=True)


async def amain(args: argparse.Namespace) -> int:
    plan = Plan(args.seed, args.units, args.keys, args.mean_unit, args.timer_every, args.timer_window_ms)
    store = Store(args.db)
    bb = make_backbone(store, args)
    extra = []
    if args.sabotage == "naive-consumer":
        offset_file = os.path.join(os.path.dirname(args.db.split("///", 1)[-1]) or ".", f"offset-{args.worker_id}")
        extra = [naive_consumer(store, args.worker_id, offset_file, asyncio.Event())]
    else:
        bb.subscribe(CONSUMER, STREAM, make_handler(args.worker_id))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR2, _print_tasks)  # the harness asks where a worker is stuck
    tasks = [asyncio.create_task(bb.run(stop), name="backbone"),
             asyncio.create_task(produce(store, bb, plan, args, stop), name="producer"),
             asyncio.create_task(announce(store, bb, args.worker_id), name="ready"),
             *[asyncio.create_task(c, name="naive") for c in extra]]
    try:
        while True:
            finished, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                if task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
                tasks.remove(task)
            if not tasks:
                return 0
    except BaseException as exc:  # noqa: BLE001 - reported for the harness, then the process ends
        print(f"CHAOS_WORKER_ERROR id={args.worker_id} {type(exc).__name__}: {str(exc)[:500]}",
              file=sys.stderr, flush=True)
        traceback.print_exc()
        return 3
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        store.close()


def _print_tasks() -> None:
    for task in asyncio.all_tasks():
        print(f"CHAOS_TASK {task.get_name()}:", file=sys.stderr)
        task.print_stack(limit=6, file=sys.stderr)
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    import faulthandler

    faulthandler.register(signal.SIGUSR1, all_threads=True)  # the harness asks where a worker is stuck
    return asyncio.run(amain(parse(argv)))


if __name__ == "__main__":
    sys.exit(main())
