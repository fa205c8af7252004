"""Tables of the shared machinery: organizations, sandboxes, API keys, the audit log."""

from __future__ import annotations

import sqlalchemy as sa

from wayline.kernel.store import JSONDoc, metadata

organizations = sa.Table(
    "organizations", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
)

sandboxes = sa.Table(
    "sandboxes", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("org_id", sa.String(64), sa.ForeignKey("organizations.id"), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("type", sa.String(16), nullable=False),  # production | development
    sa.Column("settings", JSONDoc, nullable=False, default=dict),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("org_id", "name"),
)

api_keys = sa.Table(
    "api_keys", metadata,
    sa.Column("id", sa.String(32), primary_key=True),  # the lookup prefix, shown in the key itself
    sa.Column("sandbox_id", sa.String(64), sa.ForeignKey("sandboxes.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),  # SHA-256 hex of the whole key
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("expires_ms", sa.BigInteger),
    sa.Column("revoked_ms", sa.BigInteger),
    sa.Column("last_used_ms", sa.BigInteger),
)

audit_log = sa.Table(
    "audit_log", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("sandbox_id", sa.String(64), nullable=True),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),  # create | update | delete | enable | …
    sa.Column("resource_type", sa.String(64), nullable=False),
    sa.Column("resource_id", sa.String(500), nullable=False),
    sa.Column("before", JSONDoc),
    sa.Column("after", JSONDoc),
    sa.Column("at_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_audit_sandbox_at", "sandbox_id", "at_ms"),
)

idempotency = sa.Table(
    "idempotency_keys", metadata,
    sa.Column("sandbox_id", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("body", JSONDoc),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
)


# -- the event backbone (outbox.py, consumers.py, timers.py) ----------------------------------------

BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")

# Every message that must cause work elsewhere, written in the transaction that caused it. The table
# is also the durable log consumers read from: the bus only carries notifications and copies.
outbox = sa.Table(
    "outbox", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("stream", sa.String(64), nullable=False),
    sa.Column("key", sa.String(600), nullable=False),  # ordering key: sandbox|namespace|identity value
    sa.Column("seq", sa.BigInteger, nullable=False),  # 1, 2, 3 … per (stream, key)
    sa.Column("type", sa.String(100), nullable=False),
    sa.Column("payload", JSONDoc, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("published_ms", sa.BigInteger, nullable=True),  # handed to the external bus (NATS)
    sa.UniqueConstraint("stream", "key", "seq"),
    sa.Index("ix_outbox_stream_id", "stream", "id"),
    # Partial: only rows the relay has still to publish. (A plain index on published_ms keeps an entry
    # for every row's old NULL version until vacuum, and the relay's read walked all of them: 1.5 ms
    # per read after 50,000 messages on PostgreSQL, instead of 0.1 ms.)
    sa.Index("ix_outbox_unpublished", "id", sqlite_where=sa.text("published_ms IS NULL"),
             postgresql_where=sa.text("published_ms IS NULL")),
    # Ids are never reused, even after retention deleted the newest rows: consumers follow ids.
    sqlite_autoincrement=True,
)

# The last sequence number given to each key of each stream.
stream_keys = sa.Table(
    "stream_keys", metadata,
    sa.Column("stream", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(600), primary_key=True),
    sa.Column("last_seq", sa.BigInteger, nullable=False),
    sqlite_with_rowid=False,  # one B-tree (the key), not a rowid table plus an index: half the writes
)

# Inbox: per consumer and key, the last sequence applied. Applying a message and moving this mark
# happen in one transaction, so a redelivered message is recognised and skipped.
inbox = sa.Table(
    "inbox", metadata,
    sa.Column("consumer", sa.String(100), primary_key=True),
    sa.Column("stream", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(600), primary_key=True),
    sa.Column("applied_seq", sa.BigInteger, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
    sqlite_with_rowid=False,  # one B-tree for the key and the row
)

# How far each consumer has read a stream's log (embedded mode reads the outbox directly).
consumer_offsets = sa.Table(
    "consumer_offsets", metadata,
    sa.Column("consumer", sa.String(100), primary_key=True),
    sa.Column("stream", sa.String(64), primary_key=True),
    sa.Column("last_id", sa.BigInteger, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
)

# Which consumers read which streams, as every running backbone last said (retention keeps what any
# of them has not applied, whichever process it runs in).
subscriptions = sa.Table(
    "subscriptions", metadata,
    sa.Column("consumer", sa.String(100), primary_key=True),
    sa.Column("stream", sa.String(64), primary_key=True),
    sa.Column("seen_ms", sa.BigInteger, nullable=False),
    sqlite_with_rowid=False,
)

# A key whose next message kept failing: held here, visible and replayable; other keys go on.
parked = sa.Table(
    "parked_keys", metadata,
    sa.Column("consumer", sa.String(100), primary_key=True),
    sa.Column("stream", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(600), primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),  # the message that failed
    sa.Column("message_id", sa.BigInteger, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("parked_ms", sa.BigInteger, nullable=False),
)

# Durable timers: claimed with a lease, fired into their key's ordered stream.
timers = sa.Table(
    "timers", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("stream", sa.String(64), nullable=False),
    sa.Column("key", sa.String(600), nullable=False),
    sa.Column("type", sa.String(100), nullable=False),
    sa.Column("payload", JSONDoc, nullable=False),
    sa.Column("due_ms", sa.BigInteger, nullable=False),
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_until_ms", sa.BigInteger, nullable=True),
    sa.Column("fired_ms", sa.BigInteger, nullable=True),
    sa.Column("lateness_ms", sa.BigInteger, nullable=True),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    # Partial, like the outbox's: only timers still to fire, so a claim never walks fired ones.
    sa.Index("ix_timers_due", "due_ms", "id", sqlite_where=sa.text("fired_ms IS NULL"),
             postgresql_where=sa.text("fired_ms IS NULL")),
    sa.Index("ix_timers_fired", "fired_ms", sqlite_where=sa.text("fired_ms IS NOT NULL"),
             postgresql_where=sa.text("fired_ms IS NOT NULL")),  # retention: the oldest fired first
    sqlite_autoincrement=True,  # a pruned timer's id never names a new one
)
