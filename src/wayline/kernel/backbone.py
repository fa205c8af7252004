"""The event backbone, assembled: subscriptions, timers and (in scale-out) the relay to a bus.

Embedded, consumers read the outbox log directly; `step()` does one round of everything that is due
(fire due timers, apply each subscription's next messages), each round in units of work on the store.
`run_until_idle()` repeats until nothing moves, and with a VirtualClock `advance(ms)` moves time to
each due timer in turn, so a test that waits 30 days runs in milliseconds, deterministically.

Scale-out (`bus=NatsBus(url)`): `run(stop)` runs the relay (outbox → NATS JetStream), `runners`
consumer runners per subscription pulling from the subscription's durable JetStream consumer, and the
timers; consumers no longer read the log themselves. `step()`, `run_until_idle()` and `advance()`
always work on the log directly, bus or not.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter as Tally
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy.engine import Connection

from wayline.kernel import consumers, outbox, timers
from wayline.kernel import tables as t
from wayline.kernel.clock import Clock, VirtualClock
from wayline.kernel.consumers import Applier, Handler, ManyHandler, Subscription
from wayline.kernel.store import Store, upsert_many

if TYPE_CHECKING:
    from wayline.kernel.bus import NatsBus
    from wayline.kernel.nats_consumer import NatsConsumer
    from wayline.kernel.relay import Relay

log = logging.getLogger("wayline.backbone")

SUBSCRIBER_TTL_MS = 7 * 86_400_000  # a registered subscription not seen for a week counts as retired

APPLIED = Counter("wayline_backbone_applied_total", "messages applied", ["consumer", "stream"])
REDELIVERED = Counter("wayline_backbone_redeliveries_total", "redelivered messages skipped", ["consumer", "stream"])
LAG = Gauge("wayline_backbone_lag_messages", "messages in the log not yet read", ["consumer", "stream"])
OLDEST = Gauge("wayline_backbone_oldest_pending_seconds", "age of the oldest unread message", ["consumer", "stream"])
PARKED = Gauge("wayline_backbone_parked_keys", "parked keys", ["consumer"])
TIMERS_FIRED = Counter("wayline_timers_fired_total", "timers fired")
PRUNED = Counter("wayline_backbone_pruned_total", "applied messages and fired timers deleted after the retention",
                 ["kind"])
LATENESS = Histogram("wayline_timer_lateness_seconds", "how late timers fired",
                     buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300))


class Backbone:
    def __init__(self, store: Store, clock: Clock | None = None, *, lease_ms: int = 30_000, batch: int = 500,
                 poll_seconds: float = 0.05, bus: NatsBus | None = None, runners: int = 1,
                 retention_ms: int | None = 24 * 3_600_000, prune_every_s: float = 60.0) -> None:
        self.store = store
        self.retention_ms = retention_ms  # None or 0: keep every message and fired timer
        self.prune_every_s = prune_every_s
        self._next_prune = 0.0  # monotonic time of the next pruning round
        self.pruned = {"messages": 0, "timers": 0}
        self.clock = clock or Clock()
        self.lease_ms = lease_ms
        self.batch = batch
        self.poll_seconds = poll_seconds
        self.owner = timers.new_owner()
        self.appliers: list[Applier] = []
        self._wake: asyncio.Event | None = None
        self.bus = bus
        self.runners_per_subscription = runners
        self.relay: Relay | None = None  # in scale-out, while run() runs
        self.runners: list[NatsConsumer] = []

    def subscribe(self, consumer: str, stream: str, handler: Handler, *, max_attempts: int = 5,
                  handle_many: ManyHandler | None = None) -> Applier:
        """Apply every message of `stream` with `handler(conn, message)`, in per-key order, exactly once.

        `handle_many(conn, messages)`, if given, applies a batch's ready messages in one call (fewer
        statements); it must have the effect of `handler` on each in turn. When it raises, nothing of
        it stays and the batch goes message by message through `handler` (retries, parking)."""
        a = Applier(Subscription(consumer, stream, handler, max_attempts, handle_many))
        self.appliers.append(a)
        return a

    # -- one round ---------------------------------------------------------------------------------

    def _fire_due(self, conn: Connection) -> int:
        now = self.clock.now_ms()
        claimed = timers.claim(conn, owner=self.owner, now_ms=now, lease_ms=self.lease_ms, limit=self.batch)
        return len(claimed)

    def _fire_claimed(self, conn: Connection) -> int:
        now = self.clock.now_ms()
        rows = conn.execute(sa.select(t.timers.c.id, t.timers.c.stream, t.timers.c.key, t.timers.c.type,
                                      t.timers.c.payload, t.timers.c.due_ms)
                            .where(t.timers.c.lease_owner == self.owner, t.timers.c.fired_ms.is_(None))
                            .order_by(t.timers.c.due_ms, t.timers.c.id).limit(self.batch)).all()
        done = timers.fire_many(conn, [timers.Timer(*r) for r in rows], owner=self.owner, now_ms=now)
        TIMERS_FIRED.inc(len(done))
        for timer in done:
            LATENESS.observe(max(0, now - timer.due_ms) / 1000)
        return len(done)

    def _read(self, conn: Connection, applier: Applier) -> int:
        before_applied, before_dup = applier.applied, applier.redeliveries
        n = consumers.read_log(conn, applier, now_ms=self.clock.now_ms(), limit=self.batch)
        s = applier.sub
        APPLIED.labels(s.consumer, s.stream).inc(applier.applied - before_applied)
        REDELIVERED.labels(s.consumer, s.stream).inc(applier.redeliveries - before_dup)
        return n

    def _round(self, conn: Connection) -> int:
        """One round in one unit of work: one hand-off to the writer thread and one commit, not 2 + n."""
        moved = self._fire_due(conn)
        moved += self._fire_claimed(conn)
        for a in self.appliers:
            moved += self._read(conn, a)
        return moved

    def step(self) -> int:
        """One round on the calling thread: claim and fire due timers, then read each subscription."""
        moved = self.store.run(self._fire_due)
        moved += self.store.run(self._fire_claimed)
        for a in self.appliers:
            moved += self.store.run(self._read, a)
        return moved

    def run_until_idle(self, max_rounds: int = 100_000) -> int:
        total = 0
        for _ in range(max_rounds):
            n = self.step()
            total += n
            if n == 0:
                return total
        raise RuntimeError("the backbone did not settle")

    def advance(self, ms: int) -> int:
        """VirtualClock only: move time forward by `ms`, firing each timer at its due time, in order."""
        if not isinstance(self.clock, VirtualClock):
            raise TypeError("advance() needs a VirtualClock")
        target = self.clock.now_ms() + ms
        total = self.run_until_idle()
        while True:
            due = self.store.read_sync(timers.next_due)
            if due is None or due > target:
                break
            self.clock.set(max(due, self.clock.now_ms()))
            total += self.run_until_idle()
        self.clock.set(target)
        return total + self.run_until_idle()

    # -- retention ---------------------------------------------------------------------------------

    def register(self, conn: Connection) -> None:
        """Record this backbone's subscriptions as seen now (`subscriptions`), so that a backbone in
        another process, with other subscriptions, prunes nothing these have not applied."""
        now = self.clock.now_ms()
        rows = sorted({(a.sub.consumer, a.sub.stream) for a in self.appliers})
        if rows:
            upsert_many(conn, t.subscriptions, [{"consumer": c, "stream": s, "seen_ms": now} for c, s in rows],
                        ["consumer", "stream"], ["seen_ms"])

    def subscribers(self, conn: Connection) -> dict[str, list[str]]:
        """Every stream's consumers: this backbone's, and those any backbone registered within
        SUBSCRIBER_TTL_MS (a subscription not seen for that long counts as retired)."""
        out: dict[str, set[str]] = {}
        for a in self.appliers:
            out.setdefault(a.sub.stream, set()).add(a.sub.consumer)
        since = self.clock.now_ms() - SUBSCRIBER_TTL_MS
        for c, s in conn.execute(sa.select(t.subscriptions.c.consumer, t.subscriptions.c.stream)
                                 .where(t.subscriptions.c.seen_ms >= since)).all():
            out.setdefault(s, set()).add(c)
        return {s: sorted(cs) for s, cs in out.items()}

    def prune(self, conn: Connection, *, limit: int = 5_000) -> dict[str, int]:
        """Delete what has served its purpose and is older than the retention: outbox rows that every
        subscriber of their stream has applied (and, with a bus, the relay has published), and fired
        timers. Streams no one subscribes to are kept whole (see outbox.prune)."""
        if not self.retention_ms:
            return {"messages": 0, "timers": 0}
        self.register(conn)
        before = self.clock.now_ms() - self.retention_ms
        subscribers = self.subscribers(conn)
        out = {"messages": outbox.prune(conn, subscribers=subscribers, before_ms=before,
                                        published=self.bus is not None, limit=limit),
               "timers": timers.prune(conn, before_ms=before, limit=limit)}
        self.pruned["messages"] += out["messages"]
        self.pruned["timers"] += out["timers"]
        PRUNED.labels("messages").inc(out["messages"])
        PRUNED.labels("timers").inc(out["timers"])
        return out

    def prune_all(self) -> dict[str, int]:
        """Prune in units of work until nothing more goes (the CLI; tests)."""
        total = {"messages": 0, "timers": 0}
        while True:
            got = self.store.run(self.prune)
            total = {k: total[k] + got[k] for k in total}
            if not any(got.values()):
                return total

    def _maintenance_due(self) -> bool:
        now = time.monotonic()
        if now < self._next_prune:
            return False
        self._next_prune = now + self.prune_every_s
        return True

    def _maintain(self, conn: Connection) -> dict[str, int]:
        """Every `prune_every_s`: register the subscriptions (every process), then prune (with a
        retention set; in scale-out only the worker whose relay leads)."""
        leading = self.bus is None or self.store.is_sqlite or (self.relay is not None and self.relay._lock_conn is not None)
        if self.retention_ms and leading:
            return self.prune(conn)
        self.register(conn)
        return {"messages": 0, "timers": 0}

    async def _maybe_prune(self) -> None:
        if self._maintenance_due():
            try:
                await self.store.write(self._maintain)
            except Exception:
                log.warning("backbone: a maintenance round (registration, pruning) failed", exc_info=True)

    # -- running -----------------------------------------------------------------------------------

    def notify(self) -> None:
        """Something was written to the outbox: read now rather than at the next poll."""
        if self._wake is not None:
            self._wake.set()
        if self.relay is not None:
            self.relay.notify()

    async def run(self, stop: asyncio.Event) -> None:
        """Run rounds until `stop` is set, on the store's writer threads (with a bus: see _run_bus)."""
        if self.bus is not None:
            return await self._run_bus(stop)
        self._wake = asyncio.Event()
        while not stop.is_set():
            await self._maybe_prune()
            moved = await self.store.write(self._round)
            if moved:
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            except TimeoutError:
                pass

    # -- scale-out -------------------------------------------------------------------------------

    def _observe(self, applier: Applier, counts: Tally[consumers.Outcome]) -> None:
        s = applier.sub
        APPLIED.labels(s.consumer, s.stream).inc(counts[consumers.Outcome.APPLIED])
        REDELIVERED.labels(s.consumer, s.stream).inc(counts[consumers.Outcome.DUPLICATE])

    async def _run_bus(self, stop: asyncio.Event) -> None:
        """The relay, the consumer runners and the timers, until `stop` is set. The bus is connected
        here if it is not yet (and then closed at the end); streams and consumers are ensured."""
        from wayline.kernel.nats_consumer import NatsConsumer
        from wayline.kernel.relay import Relay

        bus = self.bus
        assert bus is not None
        opened = bus.nc is None or bus.nc.is_closed
        await bus.connect()
        for a in self.appliers:
            await bus.ensure_consumer(a.sub.stream, a.sub.consumer)
        self.relay = Relay(self.store, bus, clock=self.clock, poll_seconds=min(self.poll_seconds, 0.02))
        self.runners = [NatsConsumer(self.store, bus, a, clock=self.clock, observe=self._observe)
                        for a in self.appliers for _ in range(self.runners_per_subscription)]
        tasks = [asyncio.ensure_future(self.relay.run(stop)), asyncio.ensure_future(self._run_timers(stop)),
                 *[asyncio.ensure_future(r.run(stop)) for r in self.runners]]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if opened:
                await bus.close()

    async def _run_timers(self, stop: asyncio.Event) -> None:
        backoff = self.poll_seconds
        while not stop.is_set():
            await self._maybe_prune()
            try:
                moved = await self.store.write(self._fire_due)
                moved += await self.store.write(self._fire_claimed)
            except Exception:
                log.warning("timers: a round failed", exc_info=True)
                moved, backoff = 0, min(backoff * 2, 2.0)
            else:
                backoff = self.poll_seconds
            if moved:
                if self.relay is not None:
                    self.relay.notify()
                continue
            try:
                await asyncio.wait_for(stop.wait(), backoff)
            except TimeoutError:
                pass

    # -- operations --------------------------------------------------------------------------------

    def replay(self, consumer: str, key: str) -> dict[str, Any]:
        for a in self.appliers:
            if a.sub.consumer == consumer:
                now = self.clock.now_ms()
                return self.store.run(lambda c: a.replay(c, key, now_ms=now))
        return {"replayed": 0, "parked": False, "found": False}

    def status(self) -> dict[str, Any]:
        """Per subscription: log lag, oldest unread age, parked keys, redeliveries; and the timers."""
        now = self.clock.now_ms()

        def q(conn: Connection) -> dict[str, Any]:
            subs = []
            for a in self.appliers:
                s = a.sub
                offset = consumers.read_offset(conn, s.consumer, s.stream)
                lag, oldest = conn.execute(sa.select(sa.func.count(), sa.func.min(t.outbox.c.created_ms)).where(
                    t.outbox.c.stream == s.stream, t.outbox.c.id > offset)).one()
                parked = conn.execute(sa.select(sa.func.count()).select_from(t.parked).where(
                    t.parked.c.consumer == s.consumer, t.parked.c.stream == s.stream)).scalar_one()
                age = (now - oldest) / 1000 if oldest else 0.0
                LAG.labels(s.consumer, s.stream).set(lag)
                OLDEST.labels(s.consumer, s.stream).set(age)
                PARKED.labels(s.consumer).set(parked)
                subs.append({"consumer": s.consumer, "stream": s.stream, "offset": offset, "lag": lag,
                             "oldestPendingSeconds": age, "parked": parked, "applied": a.applied,
                             "redeliveries": a.redeliveries})
            pending = timers.pending_count(conn)
            due = conn.execute(sa.select(sa.func.count()).select_from(t.timers).where(
                t.timers.c.fired_ms.is_(None), t.timers.c.due_ms <= now)).scalar_one()
            late = conn.execute(sa.select(sa.func.max(t.timers.c.lateness_ms), sa.func.avg(t.timers.c.lateness_ms))
                                .where(t.timers.c.fired_ms.is_not(None))).one()
            return {"subscriptions": subs, "timers": {"pending": pending, "due": due,
                                                      "maxLatenessMs": late[0] or 0,
                                                      "avgLatenessMs": float(late[1] or 0)}}

        return self.store.read_sync(q)
