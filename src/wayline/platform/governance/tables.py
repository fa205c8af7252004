"""Governance tables. Core labels, actions and policies live in code (governance.core); these hold
what a sandbox defines. Only governance.store touches them."""

from __future__ import annotations

import sqlalchemy as sa

from wayline.kernel.store import JSONDoc, metadata

# Custom data-usage labels (category Custom). Names are case-sensitive, unique ignoring case.
governance_labels = sa.Table(
    "governance_labels", metadata,
    sa.Column("sandbox_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("friendly_name", sa.String(200), nullable=False),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("version", sa.Integer, nullable=False, default=1),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
)

governance_actions = sa.Table(
    "governance_actions", metadata,  # custom marketing actions
    sa.Column("sandbox_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("version", sa.Integer, nullable=False, default=1),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
)

governance_policies = sa.Table(
    "governance_policies", metadata,  # custom policies
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("sandbox_id", sa.String(64), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("status", sa.String(8), nullable=False),  # DRAFT | ENABLED | DISABLED
    sa.Column("action_refs", JSONDoc, nullable=False),  # canonical /dulepolicy/marketingActions/… refs
    sa.Column("deny", JSONDoc, nullable=False),
    sa.Column("version", sa.Integer, nullable=False, default=1),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_governance_policies_sandbox", "sandbox_id", "created_ms"),
)

# A core policy's status in one sandbox; no row = DISABLED.
governance_core_status = sa.Table(
    "governance_core_status", metadata,
    sa.Column("sandbox_id", sa.String(64), primary_key=True),
    sa.Column("policy_id", sa.String(64), primary_key=True),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("version", sa.Integer, nullable=False, default=1),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
)

# Labels on the fields of one schema or field group (standard or the sandbox's): {path: [labels]}.
# A field group's labels apply in every schema that includes it.
governance_field_labels = sa.Table(
    "governance_field_labels", metadata,
    sa.Column("sandbox_id", sa.String(64), primary_key=True),
    sa.Column("resource_uri", sa.String(500), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),  # schema | fieldgroup
    sa.Column("labels", JSONDoc, nullable=False),
    sa.Column("version", sa.Integer, nullable=False, default=1),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
)
