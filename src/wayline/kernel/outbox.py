"""The outbox: messages that are published if and only if the transaction that wrote them commits.

`add(conn, …)` runs inside a unit of work. It gives the message the next sequence number of its
ordering key (one more than the key's newest message, read off the outbox's (stream, key, seq)
index, or than the mark `prune` left in `stream_keys` when it deleted the key's newest rows) and
writes it to the `outbox` table, which is also the durable log consumers read: in
the embedded default they read it directly; in scale-out a relay copies it to NATS JetStream (with
`Nats-Msg-Id` = the outbox id, so a re-publish is dropped) and consumers still fill any gap from it.

On PostgreSQL, concurrent transactions could commit outbox ids out of order, and a reader that
follows ids could step over one that commits late. A transaction-scoped advisory lock taken before
the first outbox insert makes commit order equal id order; SQLite has one writer and needs none.
The same statement queues a `NOTIFY wayline_outbox` (delivered at commit, once per transaction), so a
relay in another process relays at once instead of at its next poll.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from wayline.kernel import tables as t
from wayline.kernel.store import fetch_rows, row_chunks

_PG_OUTBOX_LOCK = 0x5761796C  # "Wayl"
CHANNEL = "wayline_outbox"  # PostgreSQL NOTIFY channel: outbox rows were committed
_PG_LOCK_AND_NOTIFY = sa.text(f"SELECT pg_advisory_xact_lock(:k), pg_notify('{CHANNEL}', '')")


class Message(NamedTuple):  # a tuple: made for every message written and read, cheaper than a dataclass
    id: int
    stream: str
    key: str
    seq: int
    type: str
    payload: Any
    created_ms: int

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "stream": self.stream, "key": self.key, "seq": self.seq, "type": self.type,
                "payload": self.payload, "created_ms": self.created_ms}

    @staticmethod
    def from_row(r: Any) -> Message:
        m = getattr(r, "_mapping", r)
        return Message(m["id"], m["stream"], m["key"], m["seq"], m["type"], m["payload"], m["created_ms"])


def ordering_key(sandbox_id: str, namespace: str, value: str) -> str:
    """The ordering key of ARCHITECTURE.md: (sandbox, namespace, identity value)."""
    return f"{sandbox_id}|{namespace}|{value}"


def identity_key(sandbox_id: str, identity_id: int, namespace: str, value: str) -> str:
    """The ordering key of a stored identity: the same (sandbox, namespace, value), led by the
    identity's id, which stands for (namespace, value) while the identity exists. Ids grow with first
    sight, zero-padded so that keys sort by them: a new identity's first message lands at the end of
    the outbox's (stream, key, seq) index, and a recent one's near it, instead of on a random page of
    it (with keys led by the value, each message of a large store dirtied a page of its own: without
    that, a profile build writes ~30 % less). An identity deleted and seen again usually gets a new id,
    and then its messages start a new key, numbered from 1 (if it gets its old id back, the old key's
    numbering goes on: sequence numbers are read off the outbox, never assumed)."""
    return f"{sandbox_id}|{identity_id:015d}|{namespace}|{value}"


_STMTS: dict[tuple[str, str], Any] = {}


def _stmt(conn: Connection, name: str) -> Any:
    """Statements built once per dialect: building a Core statement per call costs more than running it."""
    dialect = conn.dialect.name
    got = _STMTS.get((dialect, name))
    if got is not None:
        return got
    ins = sqlite.insert if dialect == "sqlite" else postgresql.insert
    if name == "pruned_mark":
        stmt = ins(t.stream_keys).values(stream=sa.bindparam("stream"), key=sa.bindparam("key"),
                                         last_seq=sa.bindparam("seq"))
        bigger = sa.func.max if dialect == "sqlite" else sa.func.greatest
        got = stmt.on_conflict_do_update(index_elements=["stream", "key"],
                                         set_={"last_seq": bigger(t.stream_keys.c.last_seq, stmt.excluded.last_seq)})
    elif name == "insert":
        got = t.outbox.insert().returning(t.outbox.c.id, sort_by_parameter_order=True)
    elif name == "read_after":
        got = (sa.select(t.outbox).where(t.outbox.c.stream == sa.bindparam("stream"),
                                         t.outbox.c.id > sa.bindparam("after"))
               .order_by(t.outbox.c.id).limit(sa.bindparam("limit")))
    else:
        raise KeyError(name)
    _STMTS[(dialect, name)] = got
    return got


def lock(conn: Connection) -> None:
    """Take the outbox's transaction lock now (PostgreSQL; SQLite has one writer anyway).

    Work that must be serialised and also writes to the outbox (the identity graph) takes this lock
    first, so it never waits for a second lock while holding the outbox's.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_OUTBOX_LOCK})


def add(conn: Connection, *, stream: str, key: str, type: str, payload: Any, now_ms: int) -> Message:
    """Write a message in the caller's transaction; it exists for everyone once that commits."""
    return add_many(conn, [(stream, key, type, payload)], now_ms=now_ms)[0]


def add_many(conn: Connection, messages: list[tuple[str, str, str, Any]], *, now_ms: int,
             returning: bool = True) -> list[Message]:
    """`add` for several (stream, key, type, payload) at once, in order: three statements for the lot.
    `returning=False`: the caller does not need the messages back ([] is returned; on SQLite that
    spares a query per chunk and an object per message)."""
    if not messages:
        return []
    if conn.dialect.name == "postgresql":
        conn.execute(_PG_LOCK_AND_NOTIFY, {"k": _PG_OUTBOX_LOCK})
    nxt = next_seqs(conn, messages)
    if conn.dialect.name == "sqlite":
        return _add_many_sqlite(conn, messages, nxt, now_ms, returning)
    out_rows = []
    for s, k, ty, p in messages:
        seq = nxt[(s, k)]
        nxt[(s, k)] = seq + 1
        out_rows.append({"stream": s, "key": k, "seq": seq, "type": ty, "payload": p, "created_ms": now_ms})
    ids = conn.execute(_stmt(conn, "insert"), out_rows if len(out_rows) > 1 else out_rows[0]).scalars().all()
    return [Message(i, r["stream"], r["key"], r["seq"], r["type"], r["payload"], now_ms) for i, r in zip(ids, out_rows)]


_SQLITE_SQL: dict[tuple[str, int], str] = {}
_KEYS_CHUNK = 500  # keys per IN list


def _sqlite_sql(name: str, n: int) -> str:
    sql = _SQLITE_SQL.get((name, n))
    if sql is None:
        sql = ("INSERT INTO outbox (stream, key, seq, type, payload, created_ms) VALUES "
               + ", ".join(["(?, ?, ?, ?, ?, ?)"] * n))
        _SQLITE_SQL[(name, n)] = sql
    return sql


# The newest sequence of each key: one backward step into the (stream, key, seq) index per key, however
# many messages the key has (a GROUP BY reads them all, and PostgreSQL may not even use that index),
# and the mark retention left for it, in the same pass over the keys.
_NEWEST = {"sqlite": "SELECT k.value, (SELECT max(o.seq) FROM outbox o WHERE o.stream = ?1 AND o.key = k.value), "
                     "(SELECT m.last_seq FROM stream_keys m WHERE m.stream = ?1 AND m.key = k.value) "
                     "FROM json_each(?2) AS k",
           "postgresql": "SELECT k, (SELECT o.seq FROM outbox o WHERE o.stream = %(s)s AND o.key = k "
                         "ORDER BY o.seq DESC LIMIT 1), "
                         "(SELECT m.last_seq FROM stream_keys m WHERE m.stream = %(s)s AND m.key = k) "
                         "FROM unnest(%(k)s::text[]) AS k"}


def next_seqs(conn: Connection, messages: list[tuple[str, str, str, Any]]) -> dict[tuple[str, str], int]:
    """The next sequence number of every (stream, key) of `messages`: one more than the key's newest
    message in the outbox, or than the mark `prune` left for it, whichever is greater (1 for a new
    key). Callers hold the outbox (PostgreSQL: the advisory lock; SQLite: the single writer), so no
    one else numbers a message meanwhile. Reading the outbox's own index, rather than keeping a
    counter row per key up to date, saves a write to a second index per message."""
    keys: dict[str, dict[str, None]] = {}  # stream -> its keys, each once
    for s, k, _, _ in messages:
        keys.setdefault(s, {})[k] = None
    last: dict[tuple[str, str], int] = {}
    dialect = conn.dialect.name
    for stream, ks in keys.items():
        uniq = list(ks)
        for start in range(0, len(uniq), _KEYS_CHUNK):
            part = uniq[start:start + _KEYS_CHUNK]
            params = (stream, orjson.dumps(part).decode()) if dialect == "sqlite" else {"s": stream, "k": part}
            for k, seq, mark in fetch_rows(conn, _NEWEST[dialect], params):
                top = max(seq or 0, mark or 0)
                if top:
                    last[(stream, k)] = top
    return {(s, k): last.get((s, k), 0) + 1 for s, ks in keys.items() for k in ks}


def _add_many_sqlite(conn: Connection, messages: list[tuple[str, str, str, Any]],
                     nxt: dict[tuple[str, str], int], now_ms: int, returning: bool) -> list[Message]:
    """SQLite: multi-row statements, no per-row RETURNING (SQLAlchemy would run one INSERT per message
    to keep RETURNING in order; measured 9x the writer CPU under load). The single writer holds the
    database, so one multi-row INSERT gets consecutive rowids ending at last_insert_rowid()."""
    out: list[Message] = []
    for part in row_chunks(messages, 6):
        rows = []
        for s, k, ty, p in part:
            seq = nxt[(s, k)]
            nxt[(s, k)] = seq + 1
            rows.append((s, k, seq, ty, p))
        params = tuple(v for s, k, seq, ty, p in rows for v in (s, k, seq, ty, orjson.dumps(p).decode(), now_ms))
        cur = conn.exec_driver_sql(_sqlite_sql("insert", len(rows)), params)
        if cur.rowcount != len(rows):
            raise RuntimeError(f"outbox insert stored {cur.rowcount} of {len(rows)} rows")
        if not returning:
            continue
        last = conn.exec_driver_sql("SELECT last_insert_rowid()").scalar_one()
        first = last - len(rows) + 1
        out += [Message(first + n, s, k, seq, ty, p, now_ms) for n, (s, k, seq, ty, p) in enumerate(rows)]
    return out


def read_after(conn: Connection, stream: str, after_id: int, limit: int) -> list[Message]:
    rows = conn.execute(_stmt(conn, "read_after"), {"stream": stream, "after": after_id, "limit": limit}).all()
    return [Message(r.id, r.stream, r.key, r.seq, r.type, r.payload, r.created_ms) for r in rows]


def read_key(conn: Connection, stream: str, key: str, after_seq: int, upto_seq: int | None = None) -> list[Message]:
    """A key's messages after `after_seq` (up to `upto_seq`), in sequence: how gaps are filled."""
    q = sa.select(t.outbox).where(t.outbox.c.stream == stream, t.outbox.c.key == key, t.outbox.c.seq > after_seq)
    if upto_seq is not None:
        q = q.where(t.outbox.c.seq <= upto_seq)
    return [Message.from_row(r) for r in conn.execute(q.order_by(t.outbox.c.seq)).all()]


def unpublished(conn: Connection, limit: int) -> list[Message]:
    rows = conn.execute(sa.select(t.outbox).where(t.outbox.c.published_ms.is_(None))
                        .order_by(t.outbox.c.id).limit(limit)).all()
    return [Message.from_row(r) for r in rows]


def mark_published(conn: Connection, ids: list[int], now_ms: int) -> None:
    if ids:
        conn.execute(t.outbox.update().where(t.outbox.c.id.in_(ids)).values(published_ms=now_ms))


def prune(conn: Connection, *, subscribers: dict[str, list[str]], before_ms: int, published: bool,
          limit: int = 5_000) -> int:
    """Delete up to `limit` outbox rows that no one needs any more; returns how many went.

    A row goes when it is older than `before_ms`, every consumer in `subscribers[stream]` has applied
    it (its inbox mark for the row's key has reached the row's sequence), and, with `published`
    (a bus relays the outbox), the relay has published it. Streams without subscribers keep their
    rows: something may still come to read them. A parked or lagging consumer keeps what it has not
    applied, and gap filling only ever reads rows above a consumer's mark, so nothing deleted can be
    asked for again. Before a key's newest row goes, its sequence is kept as the key's mark in
    `stream_keys`, so numbering goes on from there.
    """
    total = 0
    for stream, names in sorted(subscribers.items()):
        consumers = sorted(set(names))
        if not consumers or total >= limit:
            continue
        applied = " AND ".join(
            f"EXISTS (SELECT 1 FROM inbox i WHERE i.consumer = :c{n} AND i.stream = o.stream AND i.key = o.key "
            f"AND i.applied_seq >= o.seq)" for n in range(len(consumers)))
        sql = ("SELECT o.id, o.key, o.seq FROM outbox o WHERE o.stream = :stream "
               "AND o.created_ms < :before" + (" AND o.published_ms IS NOT NULL" if published else "")
               + f" AND {applied} ORDER BY o.id LIMIT :limit")
        params: dict[str, Any] = {"stream": stream, "before": before_ms, "limit": limit - total}
        params.update({f"c{n}": c for n, c in enumerate(consumers)})
        doomed = conn.execute(sa.text(sql), params).all()
        if not doomed:
            continue
        newest: dict[str, int] = {}
        for _, key, seq in doomed:
            if seq > newest.get(key, 0):
                newest[key] = seq
        # Marks for every key that loses rows (cheaper than asking which lose their newest one).
        conn.execute(_stmt(conn, "pruned_mark"), [{"stream": stream, "key": k, "seq": q} for k, q in newest.items()])
        ids = [r[0] for r in doomed]
        for start in range(0, len(ids), _KEYS_CHUNK):
            total += conn.execute(t.outbox.delete().where(t.outbox.c.id.in_(ids[start:start + _KEYS_CHUNK]))).rowcount
    return total
