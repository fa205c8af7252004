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
