"""Consumer runners for scale-out: apply a subscription's messages as NATS JetStream delivers them.

A runner pulls batches from the subscription's durable pull consumer (bus.Puller keeps one pull
request open, so messages are handed over as they arrive, and the next batch travels while one is
applied). Any number of runners, in any number of processes, may share that consumer; JetStream hands
each message to one of them, and hands it again if it is not acknowledged within the consumer's ack
wait (a crashed or stalled runner).

Each batch is one unit of work, committed before anything is acknowledged. A message goes through
`Applier.apply(conn, msg, now_ms=…, attempt=<JetStream's delivery count>)` (inbox check, handler,
inbox mark, missing predecessors filled from the outbox, parking after `max_attempts`), except in
the common case, which the runner does for the whole batch at once with the same effect: each key's
next messages in sequence, none parked, handlers all succeeding (see `_apply_batch`). Then APPLIED,
DUPLICATE, HELD and PARKED are acked; FAILED is nak'd with an exponential delay, so a failing key is
retried with backoff while every other key goes on. A unit that fails as a whole (the database is
gone) naks its batch for a retry a little later.

On PostgreSQL the runner first locks the inbox rows of the batch's keys, in key order, creating the
missing ones: two runners holding messages of one key then take turns on that key, including its
first message (a row that does not exist cannot be locked with FOR UPDATE).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

import nats.errors
import sqlalchemy as sa
from nats.aio.msg import Msg
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from wayline.kernel import tables as t
from wayline.kernel.bus import NatsBus, attempt_of, decode
from wayline.kernel.clock import Clock, pause
from wayline.kernel.consumers import Applier, Outcome
from wayline.kernel.outbox import Message
from wayline.kernel.store import Store, insert_ignore

log = logging.getLogger("wayline.nats_consumer")

ACKED = (Outcome.APPLIED, Outcome.DUPLICATE, Outcome.HELD, Outcome.PARKED)

# PostgreSQL statements built once, keys passed as one array (an IN list of 256 costs more to render).
_KEYS = sa.bindparam("keys", type_=postgresql.ARRAY(sa.String))
_PG_LOCK = (sa.select(t.inbox.c.key, t.inbox.c.applied_seq)
            .where(t.inbox.c.consumer == sa.bindparam("c"), t.inbox.c.stream == sa.bindparam("s"),
                   t.inbox.c.key == sa.any_(_KEYS))
            .order_by(t.inbox.c.key).with_for_update())
_PG_PARKED = sa.select(t.parked.c.key).where(t.parked.c.consumer == sa.bindparam("c"),
                                             t.parked.c.stream == sa.bindparam("s"), t.parked.c.key == sa.any_(_KEYS))
_PG_MARK = sa.text(
    f"UPDATE {t.inbox.name} SET applied_seq = v.seq, updated_ms = :now "
    "FROM unnest(CAST(:keys AS varchar[]), CAST(:seqs AS bigint[])) AS v(key, seq) "
    f"WHERE {t.inbox.name}.consumer = :c AND {t.inbox.name}.stream = :s AND {t.inbox.name}.key = v.key")
Observer = Callable[[Applier, "Counter[Outcome]"], None]


class NatsConsumer:
    """One runner of one subscription (an Applier) on its durable JetStream pull consumer."""

    def __init__(self, store: Store, bus: NatsBus, applier: Applier, *, clock: Clock | None = None,
                 batch: int = 256, fetch_timeout_s: float = 1.0, retry_base_s: float = 1.0,
                 retry_max_s: float = 60.0, error_delay_s: float = 1.0, observe: Observer | None = None) -> None:
        self.store = store
        self.bus = bus
        self.applier = applier
        self.clock = clock or Clock()
        self.batch = batch
        self.fetch_timeout_s = fetch_timeout_s
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.error_delay_s = error_delay_s
        self.observe = observe
        self.sub: Any = None
        self.outcomes: Counter[Outcome] = Counter()
        self.unit_errors = 0
        self.bad_messages = 0

    @property
    def stream(self) -> str:
        return self.applier.sub.stream

    @property
    def consumer(self) -> str:
        return self.applier.sub.consumer

    def backoff(self, attempt: int) -> float:
        """Delay before delivery `attempt + 1` of a message whose handler failed."""
        return min(self.retry_max_s, self.retry_base_s * (2 ** max(0, attempt - 1)))

    # -- the steps, usable one by one (tests, the crash harness) -----------------------------------

    async def start(self) -> None:
        """Ensure the stream and durable consumer exist and open a puller on it."""
        await self.bus.connect()
        if self.sub is not None:
            await self.close()
        sub = self.bus.puller(self.stream, self.consumer, batch=self.batch)
        await sub.start()
        self.sub = sub

    async def close(self) -> None:
        sub, self.sub = self.sub, None
        if sub is not None:
            await sub.close()

    async def fetch(self, timeout: float | None = None) -> list[Msg]:
        """The next batch: what has arrived, else the first to arrive within `timeout` (maybe none)."""
        if self.sub is None:
            await self.start()
        return await self.sub.fetch(self.batch, timeout=timeout or self.fetch_timeout_s)

    async def apply(self, msgs: list[Msg]) -> list[Outcome | None]:
        """Apply a batch in one unit of work; returns per message its outcome, or None when it was not
        tried (its key failed earlier in the batch, or it could not be read, or the unit failed)."""
        items: list[tuple[int, Message, int]] = []
        outs: list[Outcome | None] = [None] * len(msgs)
        for i, m in enumerate(msgs):
            try:
                items.append((i, decode(m.data), attempt_of(m)))
            except Exception:
                self.bad_messages += 1
                log.error("%s/%s: unreadable message %r dropped", self.consumer, self.stream, m.data[:200])
                try:
                    await m.term()
                except Exception:
                    pass
        if not items:
            return outs
        try:
            got = await self.store.write(self._apply_batch, items, self.clock.now_ms())
        except Exception:
            self.unit_errors += 1
            log.warning("%s/%s: a batch of %d failed; it will be redelivered", self.consumer, self.stream,
                        len(items), exc_info=True)
            return outs
        for i, out in got:
            outs[i] = out
        counts = Counter(o for o in outs if o is not None)
        self.outcomes.update(counts)
        if self.observe is not None:
            self.observe(self.applier, counts)
        return outs

    def _apply_batch(self, conn: Connection, items: list[tuple[int, Message, int]],
                     now_ms: int) -> list[tuple[int, Outcome]]:
        """The batch's unit of work. Its keys' inbox marks and parked flags are read in two queries (on
        PostgreSQL the inbox rows are created if missing and locked, in key order). Then the common case
        goes fast: each key's next messages in sequence run their handlers under one savepoint and the
        marks move in one statement. Anything else (a parked key, a gap to fill from the outbox, a key
        whose handler raised in the fast part) goes message by message through `Applier.apply`, which
        counts attempts and parks. A raise in the fast part rolls all of it back and runs it again
        without that key, so a failing handler runs twice in that delivery (its writes never stay)."""
        items = sorted(items, key=lambda x: (x[1].key, x[1].seq))
        keys = sorted({m.key for _, m, _ in items})
        applied = self._inbox(conn, keys, now_ms)
        parked = self._parked(conn, keys)
        done: list[tuple[int, Outcome]] = []
        fast: list[tuple[int, Message, int]] = []
        slow: list[tuple[int, Message, int]] = []
        upto = dict(applied)
        gapped: set[str] = set()
        for item in items:
            m = item[1]
            if m.key in parked or m.key in gapped:
                slow.append(item)
            elif m.seq <= upto.get(m.key, 0):
                done.append((item[0], Outcome.DUPLICATE))
                self.applier.redeliveries += 1
            elif m.seq == upto.get(m.key, 0) + 1:
                fast.append(item)
                upto[m.key] = m.seq
            else:
                gapped.add(m.key)
                slow.append(item)
        many = self.applier.sub.handle_many is not None
        while fast:
            bad = self._apply_fast(conn, fast, {k: v for k, v in upto.items() if v != applied.get(k, 0)}, now_ms,
                                   many)
            if bad is None:
                done += [(i, Outcome.APPLIED) for i, _, _ in fast]
                break
            if bad == "":  # the subscription's handle_many raised: find the failing key one by one
                many = False
                continue
            # A handler raised: everything of the fast part was rolled back. The failing key goes
            # message by message; the others try the fast way again.
            slow += [x for x in fast if x[1].key == bad]
            fast = [x for x in fast if x[1].key != bad]
            upto.pop(bad, None)
        slow.sort(key=lambda x: (x[1].key, x[1].seq))
        failed: set[str] = set()
        for i, m, attempt in slow:
            if m.key in failed:
                continue  # its predecessor failed just now: retried later, in order
            out = self.applier.apply(conn, m, now_ms=now_ms, attempt=attempt)
            done.append((i, out))
            if out is Outcome.FAILED:
                failed.add(m.key)
        return done

    def _apply_fast(self, conn: Connection, fast: list[tuple[int, Message, int]], marks: dict[str, int],
                    now_ms: int, many: bool = False) -> str | None:
        """Run `fast` under one savepoint and move the marks; None on success, else the key of the
        message whose handler raised, or "" when the subscription's `handle_many` raised (and nothing
        of `fast` stays)."""
        sub = self.applier.sub
        sp = conn.begin_nested()
        key = None
        try:
            if many:
                key = ""
                sub.run_many(conn, [m for _, m, _ in fast])
            else:
                for _, m, _ in fast:
                    key = m.key
                    sub.handler(conn, m)
            key = None
            self._mark(conn, marks, now_ms)
        except Exception:
            sp.rollback()
            if key is None:
                raise  # not a handler: the unit fails, the batch is redelivered
            return key
        sp.commit()
        self.applier.applied += len(fast)
        for _, m, _ in fast:
            self.applier.attempts.pop(m.id, None)
        return None

    def _mark(self, conn: Connection, marks: dict[str, int], now_ms: int) -> None:
        s = self.applier.sub
        if conn.dialect.name == "postgresql":  # the rows exist: _inbox made them
            conn.execute(_PG_MARK, {"c": s.consumer, "s": s.stream, "keys": list(marks), "seqs": list(marks.values()),
                                    "now": now_ms})
            return
        ins = sqlite.insert(t.inbox)
        stmt = ins.on_conflict_do_update(index_elements=["consumer", "stream", "key"],
                                         set_={"applied_seq": ins.excluded.applied_seq,
                                               "updated_ms": ins.excluded.updated_ms})
        conn.execute(stmt, [{"consumer": s.consumer, "stream": s.stream, "key": k, "applied_seq": v,
                             "updated_ms": now_ms} for k, v in marks.items()])

    def _inbox(self, conn: Connection, keys: list[str], now_ms: int) -> dict[str, int]:
        """The batch's keys' inbox marks; on PostgreSQL their rows locked, in key order, created if missing
        (waiting for a runner creating them too), so two runners take turns even on a key's first message."""
        s = self.applier.sub
        if conn.dialect.name != "postgresql":
            return dict(conn.execute(sa.select(t.inbox.c.key, t.inbox.c.applied_seq).where(
                t.inbox.c.consumer == s.consumer, t.inbox.c.stream == s.stream, t.inbox.c.key.in_(keys))).all())
        got = dict(conn.execute(_PG_LOCK, {"c": s.consumer, "s": s.stream, "keys": keys}).all())
        missing = [k for k in keys if k not in got]
        if missing:
            insert_ignore(conn, t.inbox, [{"consumer": s.consumer, "stream": s.stream, "key": k, "applied_seq": 0,
                                           "updated_ms": now_ms} for k in missing], ["consumer", "stream", "key"])
            got.update(conn.execute(_PG_LOCK, {"c": s.consumer, "s": s.stream, "keys": missing}).all())
        return got

    def _parked(self, conn: Connection, keys: list[str]) -> set[str]:
        s = self.applier.sub
        if conn.dialect.name == "postgresql":
            return set(conn.execute(_PG_PARKED, {"c": s.consumer, "s": s.stream, "keys": keys}).scalars())
        return set(conn.execute(sa.select(t.parked.c.key).where(
            t.parked.c.consumer == s.consumer, t.parked.c.stream == s.stream, t.parked.c.key.in_(keys))).scalars())

    async def settle(self, msgs: list[Msg], outs: list[Outcome | None]) -> None:
        """Ack what is done with; nak the rest with a delay (backoff for failing handlers)."""
        for m, out in zip(msgs, outs):
            if m.is_acked:
                continue
            try:
                if out in ACKED:
                    await m.ack()
                elif out is Outcome.FAILED:
                    await m.nak(delay=self.backoff(attempt_of(m)))
                else:
                    await m.nak(delay=self.error_delay_s)
            except Exception:  # the connection is gone: JetStream redelivers after the ack wait
                log.debug("settling failed", exc_info=True)
                return

    async def run_once(self, timeout: float | None = None) -> int:
        """Fetch, apply and settle one batch; returns how many messages it held."""
        msgs = await self.fetch(timeout)
        if msgs:
            await self.settle(msgs, await self.apply(msgs))
        return len(msgs)

    # -- running -----------------------------------------------------------------------------------

    async def _process(self, msgs: list[Msg]) -> bool:
        outs = await self.apply(msgs)
        await self.settle(msgs, outs)
        return not all(o is None for o in outs)

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set (within `fetch_timeout_s`); survives NATS and database outages.

        The next batch is fetched while the current one is applied (at most one unit in flight)."""
        backoff = 0.1
        inflight: asyncio.Future[bool] | None = None
        try:
            while not stop.is_set():
                try:
                    if self.sub is None:
                        await self.start()
                    msgs = await self.fetch()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.info("%s/%s: fetch failed: %r", self.consumer, self.stream, exc)
                    if isinstance(exc, nats.errors.ConnectionClosedError) and self.bus.nc is None:
                        return  # the bus was closed under us: we are shutting down
                    self.bus.forget()  # the server may have lost the consumer: ensure it again
                    await self.close()
                    await pause(stop, backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                backoff = 0.1
                if inflight is not None:
                    ok, inflight = await inflight, None
                    if not ok:
                        await pause(stop, min(self.error_delay_s, 1.0))  # the database is failing
                if msgs:
                    inflight = asyncio.ensure_future(self._process(msgs))
        finally:
            if inflight is not None:
                try:
                    await inflight
                except Exception:
                    log.debug("the last batch failed", exc_info=True)
            await self.close()
