"""Consumers: apply a stream's messages in per-key order, exactly once, parking a key that keeps failing.

The inbox holds, per (consumer, stream, key), the last sequence applied. Applying a message, moving
that mark and the handler's own writes share one transaction: a redelivered message (sequence at or
below the mark) is skipped; a message that arrives ahead of its predecessors pulls them from the
outbox first, so the bus only has to deliver at least once, in any order.

A handler that raises is retried; after `max_attempts` its key is parked: recorded with the error,
its later messages held back (they stay in the outbox), and every other key goes on. `replay`
unparks the key and applies what waited, in order.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from wayline.kernel import outbox
from wayline.kernel import tables as t
from wayline.kernel.outbox import Message

Handler = Callable[[Connection, Message], Any]
# Applies a run of messages as `handler` would one by one, in the order given (each key's in sequence),
# usually in fewer statements; if it raises, none of the run stays and the messages go one by one.
ManyHandler = Callable[[Connection, list[Message]], Any]


_BSTMTS: dict[tuple[str, str], Any] = {}


def _bstmt(conn: Connection, name: str) -> Any:
    dialect = conn.dialect.name
    got = _BSTMTS.get((dialect, name))
    if got is not None:
        return got
    ins = sqlite.insert if dialect == "sqlite" else postgresql.insert
    c, st, keys = sa.bindparam("consumer"), sa.bindparam("stream"), sa.bindparam("keys", expanding=True)
    if name == "states":
        got = sa.select(t.inbox.c.key, t.inbox.c.applied_seq).where(
            t.inbox.c.consumer == c, t.inbox.c.stream == st, t.inbox.c.key.in_(keys))
        if dialect == "postgresql":
            got = got.order_by(t.inbox.c.key).with_for_update()
    elif name == "parked":
        got = sa.select(t.parked.c.key).where(t.parked.c.consumer == c, t.parked.c.stream == st,
                                              t.parked.c.key.in_(keys))
    elif name == "mark":
        stmt = ins(t.inbox).values(consumer=c, stream=st, key=sa.bindparam("key"),
                                   applied_seq=sa.bindparam("seq"), updated_ms=sa.bindparam("now"))
        got = stmt.on_conflict_do_update(index_elements=["consumer", "stream", "key"],
                                         set_={"applied_seq": stmt.excluded.applied_seq,
                                               "updated_ms": stmt.excluded.updated_ms})
    else:
        raise KeyError(name)
    _BSTMTS[(dialect, name)] = got
    return got


class Outcome(enum.Enum):
    APPLIED = "applied"  # this message (and any predecessors it pulled in) took effect now
    DUPLICATE = "duplicate"  # already applied: a redelivery
    HELD = "held"  # its key is parked; it waits in the outbox
    FAILED = "failed"  # the handler raised; try again later
    PARKED = "parked"  # the handler raised once too often: the key is parked now


@dataclass(frozen=True)
class Subscription:
    consumer: str
    stream: str
    handler: Handler
    max_attempts: int = 5
    handle_many: ManyHandler | None = None

    def run_many(self, conn: Connection, msgs: list[Message]) -> None:
        """Run the handlers of `msgs` (the caller holds a savepoint): one call when there is a
        `handle_many`, else `handler` per message."""
        if self.handle_many is not None:
            if msgs:
                self.handle_many(conn, msgs)
            return
        for m in msgs:
            self.handler(conn, m)


def _upsert(conn: Connection, table: sa.Table, values: dict[str, Any], keys: list[str], update: dict[str, Any]) -> None:
    ins = (sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert)(table).values(**values)
    conn.execute(ins.on_conflict_do_update(index_elements=keys, set_=update))


class Applier:
    """Applies one subscription's messages; keeps attempt counts of failing messages in memory."""

    def __init__(self, sub: Subscription) -> None:
        self.sub = sub
        self.attempts: dict[int, int] = {}
        self.redeliveries = 0
        self.applied = 0

    def _state(self, conn: Connection, key: str) -> tuple[int, bool]:
        s = self.sub
        q = sa.select(t.inbox.c.applied_seq).where(t.inbox.c.consumer == s.consumer, t.inbox.c.stream == s.stream,
                                                   t.inbox.c.key == key)
        if conn.dialect.name == "postgresql":
            self._lockable(conn, [key])
            q = q.with_for_update()  # two workers on one key take turns
        applied = conn.execute(q).scalar()
        parked = conn.execute(sa.select(t.parked.c.seq).where(
            t.parked.c.consumer == s.consumer, t.parked.c.stream == s.stream, t.parked.c.key == key)).first()
        return applied or 0, parked is not None

    def _lockable(self, conn: Connection, keys: list[str]) -> None:
        """PostgreSQL: make sure the keys' inbox rows exist, so FOR UPDATE has a row to lock.

        (FOR UPDATE locks nothing for a row that does not exist yet: two workers could both apply a
        key's first message. Inserted in key order, like the locks, so concurrent batches don't deadlock.)
        """
        s = self.sub
        rows = [{"consumer": s.consumer, "stream": s.stream, "key": k, "applied_seq": 0, "updated_ms": 0}
                for k in sorted(keys)]
        conn.execute(postgresql.insert(t.inbox).on_conflict_do_nothing(
            index_elements=["consumer", "stream", "key"]), rows)

    def _mark(self, conn: Connection, key: str, seq: int, now_ms: int) -> None:
        s = self.sub
        _upsert(conn, t.inbox, {"consumer": s.consumer, "stream": s.stream, "key": key, "applied_seq": seq,
                                "updated_ms": now_ms}, ["consumer", "stream", "key"],
                {"applied_seq": seq, "updated_ms": now_ms})

    def apply(self, conn: Connection, msg: Message, *, now_ms: int, attempt: int | None = None,
              retry_now: bool = False) -> Outcome:
        """Apply `msg` (and any missing predecessors) in the caller's transaction.

        `attempt` is the bus's delivery count when it has one; otherwise attempts are counted here.
        With `retry_now`, a failing handler is retried at once until it succeeds or the key is parked.
        """
        applied, parked = self._state(conn, msg.key)
        if parked:
            return Outcome.HELD
        if msg.seq <= applied:
            self.redeliveries += 1
            return Outcome.DUPLICATE
        todo = [msg] if msg.seq == applied + 1 else outbox.read_key(conn, msg.stream, msg.key, applied, msg.seq)
        for m in todo:
            while True:
                sp = conn.begin_nested()
                try:
                    self.sub.handler(conn, m)
                except Exception as exc:
                    sp.rollback()
                    n = attempt if attempt is not None and m.id == msg.id else self.attempts.get(m.id, 0) + 1
                    self.attempts[m.id] = n
                    if n >= self.sub.max_attempts:
                        self._park(conn, m, n, exc, now_ms)
                        self._set(conn, m.key, m.seq - 1, applied, now_ms)
                        return Outcome.PARKED
                    if retry_now:
                        continue
                    self._set(conn, m.key, m.seq - 1, applied, now_ms)
                    return Outcome.FAILED
                sp.commit()
                self.attempts.pop(m.id, None)
                self.applied += 1
                break
        self._mark(conn, msg.key, msg.seq, now_ms)
        return Outcome.APPLIED

    def apply_batch(self, conn: Connection, msgs: list[Message], *, now_ms: int) -> list[Outcome]:
        """Apply a batch in log order: a few statements for all of it when every key's next message is
        there and no handler raises; otherwise message by message, as `apply` with `retry_now`."""
        outs = self._apply_fast(conn, msgs, now_ms)
        if outs is not None:
            return outs
        return [self.apply(conn, m, now_ms=now_ms, retry_now=True) for m in msgs]

    def _apply_fast(self, conn: Connection, msgs: list[Message], now_ms: int) -> list[Outcome] | None:
        """All of `msgs` in a few statements when every key's next message is there in order and no
        handler raises; None when the careful path (per message, with savepoints) must do it instead."""
        s = self.sub
        keys = list({m.key for m in msgs})
        args = {"consumer": s.consumer, "stream": s.stream, "keys": keys}
        if any(m.id in self.attempts for m in msgs):
            return None
        if conn.dialect.name == "postgresql":
            self._lockable(conn, keys)
        parked = set(conn.execute(_bstmt(conn, "parked"), args).scalars().all())
        state = dict(conn.execute(_bstmt(conn, "states"), args).all())
        outs: list[Outcome] = []
        todo: list[Message] = []
        for m in msgs:
            applied = state.get(m.key, 0)
            if m.key in parked:
                outs.append(Outcome.HELD)
            elif m.seq <= applied:
                outs.append(Outcome.DUPLICATE)
            elif m.seq == applied + 1:
                state[m.key] = m.seq
                todo.append(m)
                outs.append(Outcome.APPLIED)
            else:
                return None  # a gap: the careful path pulls the missing messages from the outbox
        sp = conn.begin_nested()
        try:
            self.sub.run_many(conn, todo)
        except Exception:
            sp.rollback()
            return None
        sp.commit()
        marks = {}
        for m in todo:
            marks[m.key] = m.seq
        if marks:
            rows = [{"consumer": s.consumer, "stream": s.stream, "key": k, "seq": q, "now": now_ms}
                    for k, q in marks.items()]
            conn.execute(_bstmt(conn, "mark"), rows if len(rows) > 1 else rows[0])
        self.applied += len(todo)
        self.redeliveries += sum(1 for o in outs if o is Outcome.DUPLICATE)
        return outs

    def _set(self, conn: Connection, key: str, seq: int, before: int, now_ms: int) -> None:
        if seq > before:
            self._mark(conn, key, seq, now_ms)

    def _park(self, conn: Connection, m: Message, attempts: int, exc: Exception, now_ms: int) -> None:
        s = self.sub
        error = f"{type(exc).__name__}: {exc}"[:2000]
        _upsert(conn, t.parked, {"consumer": s.consumer, "stream": s.stream, "key": m.key, "seq": m.seq,
                                 "message_id": m.id, "attempts": attempts, "error": error, "parked_ms": now_ms},
                ["consumer", "stream", "key"],
                {"seq": m.seq, "message_id": m.id, "attempts": attempts, "error": error, "parked_ms": now_ms})
        self.attempts.pop(m.id, None)

    def replay(self, conn: Connection, key: str, *, now_ms: int) -> dict[str, Any]:
        """Unpark `key` and apply what waited for it, in order (it parks again if it fails again)."""
        s = self.sub
        gone = conn.execute(t.parked.delete().where(t.parked.c.consumer == s.consumer,
                                                    t.parked.c.stream == s.stream, t.parked.c.key == key)).rowcount
        if not gone:
            return {"replayed": 0, "parked": False, "found": False}
        applied, _ = self._state(conn, key)
        waiting = outbox.read_key(conn, s.stream, key, applied)
        done = 0
        for m in waiting:
            out = self.apply(conn, m, now_ms=now_ms, retry_now=True)
            if out is Outcome.PARKED:
                return {"replayed": done, "parked": True, "found": True}
            done += out is Outcome.APPLIED
        return {"replayed": done, "parked": False, "found": True}


def parked_keys(conn: Connection, *, consumer: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    q = sa.select(t.parked)
    if consumer:
        q = q.where(t.parked.c.consumer == consumer)
    rows = conn.execute(q.order_by(t.parked.c.parked_ms).limit(limit)).mappings().all()
    return [{"consumer": r["consumer"], "stream": r["stream"], "key": r["key"], "seq": r["seq"],
             "messageId": r["message_id"], "attempts": r["attempts"], "error": r["error"],
             "parkedMs": r["parked_ms"]} for r in rows]


def read_offset(conn: Connection, consumer: str, stream: str) -> int:
    return conn.execute(sa.select(t.consumer_offsets.c.last_id).where(
        t.consumer_offsets.c.consumer == consumer, t.consumer_offsets.c.stream == stream)).scalar() or 0


def write_offset(conn: Connection, consumer: str, stream: str, last_id: int, now_ms: int) -> None:
    _upsert(conn, t.consumer_offsets, {"consumer": consumer, "stream": stream, "last_id": last_id,
                                       "updated_ms": now_ms}, ["consumer", "stream"],
            {"last_id": sa.func.max(t.consumer_offsets.c.last_id, last_id) if conn.dialect.name == "sqlite"
             else sa.func.greatest(t.consumer_offsets.c.last_id, last_id), "updated_ms": now_ms})


def read_log(conn: Connection, applier: Applier, *, now_ms: int, limit: int = 500) -> int:
    """Embedded mode: apply the next messages of the stream's log; returns how many were read."""
    s = applier.sub
    after = read_offset(conn, s.consumer, s.stream)
    batch = outbox.read_after(conn, s.stream, after, limit)
    if batch:
        applier.apply_batch(conn, batch, now_ms=now_ms)
        write_offset(conn, s.consumer, s.stream, batch[-1].id, now_ms)
    return len(batch)
