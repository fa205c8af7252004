"""Durable timers: rows with a due time, claimed in batches under a lease, fired into their key's stream.

Claiming is one `UPDATE … WHERE id IN (SELECT … ORDER BY due_ms LIMIT n) RETURNING` (both databases;
`FOR UPDATE SKIP LOCKED` inside on PostgreSQL so concurrent schedulers take different rows). No lock
is held while a claimed timer is fired; firing is a compare-and-set on the lease owner that writes a
"timer fired" message into the timer's ordered stream, so a wait-for-event timeout and the awaited
event are decided in the order they happened. A lease that expires (a crashed scheduler) returns the
timer to the pool; the compare-and-set makes sure it fires once.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from wayline.kernel import outbox
from wayline.kernel import tables as t

FIRED = "timer.fired"


@dataclass(frozen=True)
class Timer:
    id: int
    stream: str
    key: str
    type: str
    payload: Any
    due_ms: int


def schedule(conn: Connection, *, stream: str, key: str, type: str, payload: Any, due_ms: int, now_ms: int) -> int:
    """Create a timer in the caller's transaction; returns its id."""
    return conn.execute(t.timers.insert().values(stream=stream, key=key, type=type, payload=payload, due_ms=due_ms,
                                                 created_ms=now_ms).returning(t.timers.c.id)).scalar_one()


def cancel(conn: Connection, timer_id: int) -> bool:
    """Cancel a timer that has not fired; True when it was pending."""
    return bool(conn.execute(t.timers.delete().where(t.timers.c.id == timer_id,
                                                     t.timers.c.fired_ms.is_(None))).rowcount)


def new_owner() -> str:
    return "sched-" + secrets.token_hex(6)


def claim(conn: Connection, *, owner: str, now_ms: int, lease_ms: int, limit: int) -> list[Timer]:
    """Lease up to `limit` due timers to `owner`, earliest first."""
    inner = (sa.select(t.timers.c.id)
             .where(t.timers.c.fired_ms.is_(None), t.timers.c.due_ms <= now_ms,
                    sa.or_(t.timers.c.lease_until_ms.is_(None), t.timers.c.lease_until_ms < now_ms))
             .order_by(t.timers.c.due_ms, t.timers.c.id).limit(limit))
    if conn.dialect.name == "postgresql":
        inner = inner.with_for_update(skip_locked=True)
    stmt = (t.timers.update().where(t.timers.c.id.in_(inner.scalar_subquery()))
            .values(lease_owner=owner, lease_until_ms=now_ms + lease_ms)
            .returning(t.timers.c.id, t.timers.c.stream, t.timers.c.key, t.timers.c.type, t.timers.c.payload,
                       t.timers.c.due_ms))
    rows = conn.execute(stmt).all()
    return sorted((Timer(*r) for r in rows), key=lambda x: (x.due_ms, x.id))


def fire(conn: Connection, timer: Timer, *, owner: str, now_ms: int) -> outbox.Message | None:
    """Fire a claimed timer once: None when another owner took it over or it already fired."""
    done = conn.execute(t.timers.update().where(t.timers.c.id == timer.id, t.timers.c.lease_owner == owner,
                                                t.timers.c.fired_ms.is_(None))
                        .values(fired_ms=now_ms, lateness_ms=max(0, now_ms - timer.due_ms))).rowcount
    if not done:
        return None
    payload = {"timerId": timer.id, "dueMs": timer.due_ms, "type": timer.type, "payload": timer.payload}
    return outbox.add(conn, stream=timer.stream, key=timer.key, type=FIRED, payload=payload, now_ms=now_ms)


def pending_count(conn: Connection) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(t.timers)
                        .where(t.timers.c.fired_ms.is_(None))).scalar_one()


def next_due(conn: Connection) -> int | None:
    return conn.execute(sa.select(sa.func.min(t.timers.c.due_ms)).where(t.timers.c.fired_ms.is_(None))).scalar()


def fire_many(conn: Connection, claimed: list[Timer], *, owner: str, now_ms: int) -> list[Timer]:
    """`fire` for a batch: one compare-and-set for the lot, then their messages in due order."""
    if not claimed:
        return []
    late = sa.case((t.timers.c.due_ms < now_ms, now_ms - t.timers.c.due_ms), else_=0)
    ids = set(conn.execute(t.timers.update().where(t.timers.c.id.in_([x.id for x in claimed]),
                                                   t.timers.c.lease_owner == owner, t.timers.c.fired_ms.is_(None))
                           .values(fired_ms=now_ms, lateness_ms=late).returning(t.timers.c.id)).scalars().all())
    fired = [x for x in claimed if x.id in ids]
    outbox.add_many(conn, [(x.stream, x.key, FIRED, {"timerId": x.id, "dueMs": x.due_ms, "type": x.type,
                                                     "payload": x.payload}) for x in fired], now_ms=now_ms)
    return fired


def prune(conn: Connection, *, before_ms: int, limit: int = 5_000) -> int:
    """Delete up to `limit` timers that fired before `before_ms` (their messages are in the outbox)."""
    inner = (sa.select(t.timers.c.id).where(t.timers.c.fired_ms.is_not(None), t.timers.c.fired_ms < before_ms)
             .order_by(t.timers.c.fired_ms).limit(limit))
    return conn.execute(t.timers.delete().where(t.timers.c.id.in_(inner.scalar_subquery()))).rowcount or 0
