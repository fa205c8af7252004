"""The platform's tables. Only the platform's query modules touch them."""

from __future__ import annotations

import sqlalchemy as sa

from wayline.kernel.store import JSONDoc, metadata

BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")

# Classes, field groups, data types and schemas of the XDM-style registry. Standard pieces live in
# code (wayline.platform.schemas.standard); this table holds what a sandbox defines.
schema_resources = sa.Table(
    "schema_resources", metadata,
    sa.Column("sandbox_id", sa.String(64), primary_key=True),
    sa.Column("uri", sa.String(500), primary_key=True),  # the resource's $id
    sa.Column("kind", sa.String(16), nullable=False),  # class | fieldgroup | datatype | schema
    sa.Column("title", sa.String(500), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("body", JSONDoc, nullable=False),  # the definition as the user gave it (normalised)
    sa.Column("profile_enabled", sa.Boolean, nullable=False, default=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
)

schema_descriptors = sa.Table(
    "schema_descriptors", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("sandbox_id", sa.String(64), nullable=False),
    sa.Column("schema_uri", sa.String(500), nullable=False),
    sa.Column("type", sa.String(64), nullable=False),  # xdm:descriptorIdentity | xdm:descriptorOneToOne
    sa.Column("body", JSONDoc, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_descriptors_schema", "sandbox_id", "schema_uri"),
)

datasets = sa.Table(
    "datasets", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("sandbox_id", sa.String(64), nullable=False),
    sa.Column("name", sa.String(500), nullable=False),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("schema_uri", sa.String(500), nullable=False),
    sa.Column("profile_enabled", sa.Boolean, nullable=False, default=False),
    sa.Column("labels", JSONDoc, nullable=False, default=list),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_datasets_sandbox", "sandbox_id", "created_ms"),
)

inlets = sa.Table(
    "inlets", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("sandbox_id", sa.String(64), nullable=False),
    sa.Column("name", sa.String(500), nullable=False),
    sa.Column("dataset_id", sa.String(40), nullable=True),  # default dataset when the header names none
    sa.Column("source_name", sa.String(200), nullable=False, default=""),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
)

# One row per accepted record. (dataset_id, record_id) is unique: re-ingesting an _id is a no-op.
records = sa.Table(
    "records", metadata,
    sa.Column("seq", BigId, primary_key=True, autoincrement=True),
    sa.Column("sandbox_id", sa.String(64), nullable=False),
    sa.Column("dataset_id", sa.String(40), nullable=False),
    sa.Column("record_id", sa.String(500), nullable=False),
    sa.Column("ts_ms", sa.BigInteger, nullable=True),  # the record's timestamp, when it has one
    sa.Column("batch_id", sa.String(40), nullable=True),
    sa.Column("xaction_id", sa.String(64), nullable=True),
    sa.Column("body", JSONDoc, nullable=False),
    sa.Column("received_ms", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("dataset_id", "record_id"),
    sa.Index("ix_records_batch", "batch_id"),
)

# Records that failed validation are kept, never dropped: listed, corrected and replayed.
failed_records = sa.Table(
    "failed_records", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("sandbox_id", sa.String(64), nullable=False),
    sa.Column("dataset_id", sa.String(40), nullable=False),
    sa.Column("batch_id", sa.String(40), nullable=True),
    sa.Column("xaction_id", sa.String(64), nullable=True),
    sa.Column("record_id", sa.String(500), nullable=True),
    sa.Column("body", JSONDoc, nullable=True),  # the record, when it parsed as JSON
    sa.Column("raw", sa.Text, nullable=True),  # the original text, when it did not
    sa.Column("errors", JSONDoc, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # failed | replayed | discarded
    sa.Column("received_ms", sa.BigInteger, nullable=False),
    sa.Column("resolved_ms", sa.BigInteger, nullable=True),
    sa.Index("ix_failed_dataset_status", "dataset_id", "status", "id"),
)

batches = sa.Table(
    "batches", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("sandbox_id", sa.String(64), nullable=False),
    sa.Column("dataset_id", sa.String(40), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # loading | processing | success | failed | partial | aborted
    sa.Column("input_format", JSONDoc, nullable=False),
    sa.Column("mapping", JSONDoc, nullable=True),  # CSV/Parquet column -> XDM field path
    sa.Column("records_total", sa.Integer, nullable=False, default=0),
    sa.Column("records_ok", sa.Integer, nullable=False, default=0),
    sa.Column("records_duplicate", sa.Integer, nullable=False, default=0),
    sa.Column("records_failed", sa.Integer, nullable=False, default=0),
    sa.Column("errors", JSONDoc, nullable=False, default=list),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("completed_ms", sa.BigInteger, nullable=True),
    # While processing: when the processor's lease ends. records_total doubles as the checkpoint
    # (records consumed so far), advanced in the same transaction as each chunk's records.
    sa.Column("lease_until_ms", sa.BigInteger, nullable=True),
    sa.Index("ix_batches_dataset", "dataset_id", "created_ms"),
)

# An uploaded file is stored in parts of a few MiB, so neither upload nor processing holds a whole
# file in memory. Names with a '/' are uploads in progress (a file name cannot contain one).
batch_files = sa.Table(
    "batch_files", metadata,
    sa.Column("batch_id", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(500), primary_key=True),
    sa.Column("part", sa.Integer, primary_key=True, default=0),
    sa.Column("size", sa.BigInteger, nullable=False),  # of this part
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
)

# -- identities and profiles ------------------------------------------------------------------------
# Graph and profile writes run under one lock (the outbox's, on PostgreSQL; SQLite has one writer),
# so ids are allocated by the writer (max + 1) and a graph's id is the smallest id of its members.

identity_namespaces = sa.Table(
    "identity_namespaces", metadata,  # custom namespaces; the standard ones live in code
    sa.Column("sandbox_id", sa.String(64), primary_key=True),
    sa.Column("code", sa.String(64), primary_key=True),
    sa.Column("id", sa.Integer, nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("id_type", sa.String(20), nullable=False),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
)

identities = sa.Table(
    "identities", metadata,
    # INTEGER on SQLite: the id is the rowid itself, not a second B-tree (ids are still given by the writer).
    sa.Column("id", BigId, primary_key=True, autoincrement=False),
    sa.Column("sandbox_id", sa.String(64), nullable=False),
    sa.Column("ns", sa.String(64), nullable=False),
    sa.Column("value", sa.String(1024), nullable=False),
    sa.Column("graph_id", sa.BigInteger, nullable=False),
    sa.Column("first_seen_ms", sa.BigInteger, nullable=False),
    sa.Column("last_seen_ms", sa.BigInteger, nullable=False),
    sa.Column("event_count", sa.Integer, nullable=False, default=0),  # experience events it is primary of
    sa.UniqueConstraint("sandbox_id", "ns", "value"),
    sa.Index("ix_identities_graph", "graph_id"),
)

identity_links = sa.Table(
    "identity_links", metadata,  # a_id < b_id: the two were seen together in a record
    sa.Column("a_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("b_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("graph_id", sa.BigInteger, nullable=False),
    sa.Column("first_seen_ms", sa.BigInteger, nullable=False),
    sa.Column("last_seen_ms", sa.BigInteger, nullable=False),
    # Covering: loading a graph's links reads this index alone, not the table row of each link as well.
    sa.Index("ix_identity_links_graph", "graph_id", "first_seen_ms", "last_seen_ms"),
    sqlite_with_rowid=False,  # one B-tree for the key and the row
)

# What happened to graphs beyond ordinary linking: merges, evictions by the graph limit, splits and
# privacy deletes. Never silent: each is a row here and a profile-change event on the bus.
graph_events = sa.Table(
    "graph_events", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("sandbox_id", sa.String(64), nullable=False),
    sa.Column("graph_id", sa.BigInteger, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # merge | evict | split | delete
    sa.Column("detail", JSONDoc, nullable=False),
    sa.Column("at_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_graph_events_graph", "sandbox_id", "graph_id", "id"),
)

merge_policies = sa.Table(
    "merge_policies", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("sandbox_id", sa.String(64), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("schema_class", sa.String(200), nullable=False),
    sa.Column("is_default", sa.Boolean, nullable=False, default=False),
    sa.Column("identity_graph", sa.String(8), nullable=False),  # none | pdg
    sa.Column("attribute_merge", sa.String(32), nullable=False),  # timestampOrdered | dataSetPrecedence
    sa.Column("dataset_order", JSONDoc, nullable=False, default=list),
    sa.Column("version", sa.Integer, nullable=False, default=1),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_merge_policies_sandbox", "sandbox_id", "created_ms"),
)

# One fragment per (dataset, primary identity): the dataset's records about that identity, upserted
# attribute by attribute (wayline.platform.merging.upsert).
profile_fragments = sa.Table(
    "profile_fragments", metadata,
    # Identity first: the key also serves reads of an identity's fragments, so no second index is kept.
    sa.Column("identity_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("dataset_id", sa.String(40), primary_key=True),
    sa.Column("sandbox_id", sa.String(64), nullable=False),
    sa.Column("body", JSONDoc, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
    sa.Column("leaf_ms", JSONDoc, nullable=True),
    sa.Column("record_id", sa.String(500), nullable=True),
)

# Every profile record (fragment sources and experience events) by its primary identity: what a
# privacy delete removes, and the index experience events are read through.
profile_records = sa.Table(
    "profile_records", metadata,
    sa.Column("identity_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("is_event", sa.Boolean, primary_key=True),
    sa.Column("ts_ms", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("dataset_id", sa.String(40), primary_key=True),
    sa.Column("record_id", sa.String(500), primary_key=True),
    sqlite_with_rowid=False,  # one B-tree (the key), not a rowid table plus an index: half the writes
)

# The merged profiles of the sandbox's default merge policy, kept up to date by every change
# (`key` is the graph id under pdg, the identity id under none). Other policies merge on read.
profile_view = sa.Table(
    "profile_view", metadata,
    sa.Column("sandbox_id", sa.String(64), primary_key=True),
    sa.Column("key", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("policy", sa.String(60), nullable=False),  # "<policy id>@<version>"
    sa.Column("body", JSONDoc, nullable=False),
    sa.Column("event_count", sa.Integer, nullable=False, default=0),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
)

# -- segments ---------------------------------------------------------------------------------------

segment_definitions = sa.Table(
    "segment_definitions", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("sandbox_id", sa.String(64), nullable=False),
    sa.Column("name", sa.String(500), nullable=False),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("expression", JSONDoc, nullable=False),  # {type: PQL, format: pql/text, value}
    sa.Column("evaluation", JSONDoc, nullable=False),  # {batch|continuous|synchronous: {enabled}}
    sa.Column("continuous", sa.Boolean, nullable=False, default=False),
    sa.Column("merge_policy_id", sa.String(40), nullable=True),  # None: the sandbox's default
    sa.Column("depends_on", JSONDoc, nullable=False, default=list),  # segment ids used by inSegment()
    sa.Column("labels", JSONDoc, nullable=False, default=list),
    sa.Column("version", sa.Integer, nullable=False, default=1),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_segment_definitions_sandbox", "sandbox_id", "created_ms"),
)

# Membership per (segment, profile): realized (entered at the last evaluation), existing (still in),
# exited. `profile_key` is the stored profile's key (graph id under pdg, identity id under none).
segment_members = sa.Table(
    "segment_members", metadata,
    sa.Column("segment_id", sa.String(40), primary_key=True),
    sa.Column("profile_key", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("sandbox_id", sa.String(64), nullable=False),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("qualified_ms", sa.BigInteger, nullable=False),  # lastQualificationTime
    sa.Index("ix_segment_members_profile", "sandbox_id", "profile_key"),
)

segment_jobs = sa.Table(
    "segment_jobs", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("sandbox_id", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(10), nullable=False),  # evaluate | export
    sa.Column("status", sa.String(12), nullable=False),  # queued | processing | succeeded | failed
    sa.Column("request", JSONDoc, nullable=False),
    sa.Column("counts", JSONDoc, nullable=False, default=dict),
    sa.Column("errors", JSONDoc, nullable=False, default=list),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("started_ms", sa.BigInteger, nullable=True),
    sa.Column("finished_ms", sa.BigInteger, nullable=True),
    sa.Column("output", sa.LargeBinary, nullable=True),  # an export's file
    sa.Index("ix_segment_jobs_sandbox", "sandbox_id", "created_ms"),
)
