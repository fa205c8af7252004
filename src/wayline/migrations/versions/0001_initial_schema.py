"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-12-05 05:46:14.186529
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('sandbox_id', sa.String(length=64), nullable=True),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('resource_id', sa.String(length=500), nullable=False),
    sa.Column('before', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('after', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('at_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_sandbox_at', ['sandbox_id', 'at_ms'], unique=False)

    op.create_table('batch_files',
    sa.Column('batch_id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=500), nullable=False),
    sa.Column('part', sa.Integer(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('created_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('batch_id', 'name', 'part', name=op.f('pk_batch_files'))
    )
    op.create_table('batches',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('sandbox_id', sa.String(length=64), nullable=False),
    sa.Column('dataset_id', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('input_format', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('mapping', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('records_total', sa.Integer(), nullable=False),
    sa.Column('records_ok', sa.Integer(), nullable=False),
    sa.Column('records_duplicate', sa.Integer(), nullable=False),
    sa.Column('records_failed', sa.Integer(), nullable=False),
    sa.Column('errors', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_ms', sa.BigInteger(), nullable=False),
    sa.Column('completed_ms', sa.BigInteger(), nullable=True),
    sa.Column('lease_until_ms', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_batches'))
    )
    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.create_index('ix_batches_dataset', ['dataset_id', 'created_ms'], unique=False)

    op.create_table('consumer_offsets',
    sa.Column('consumer', sa.String(length=100), nullable=False),
    sa.Column('stream', sa.String(length=64), nullable=False),
    sa.Column('last_id', sa.BigInteger(), nullable=False),
    sa.Column('updated_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('consumer', 'stream', name=op.f('pk_consumer_offsets'))
    )
    op.create_table('datasets',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('sandbox_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=500), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('schema_uri', sa.String(length=500), nullable=False),
    sa.Column('profile_enabled', sa.Boolean(), nullable=False),
    sa.Column('labels', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_ms', sa.BigInteger(), nullable=False),
    sa.Column('updated_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_datasets'))
    )
    with op.batch_alter_table('datasets', schema=None) as batch_op:
        batch_op.create_index('ix_datasets_sandbox', ['sandbox_id', 'created_ms'], unique=False)

    op.create_table('failed_records',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('sandbox_id', sa.String(length=64), nullable=False),
    sa.Column('dataset_id', sa.String(length=40), nullable=False),
    sa.Column('batch_id', sa.String(length=40), nullable=True),
    sa.Column('xaction_id', sa.String(length=64), nullable=True),
    sa.Column('record_id', sa.String(length=500), nullable=True),
    sa.Column('body', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('raw', sa.Text(), nullable=True),
    sa.Column('errors', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('received_ms', sa.BigInteger(), nullable=False),
    sa.Column('resolved_ms', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_failed_records'))
    )
    with op.batch_alter_table('failed_records', schema=None) as batch_op:
        batch_op.create_index('ix_failed_dataset_status', ['dataset_id', 'status', 'id'], unique=False)

    op.create_table('governance_actions',
    sa.Column('sandbox_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_ms', sa.BigInteger(), nullable=False),
    sa.Column('updated_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('sandbox_id', 'name', name=op.f('pk_governance_actions'))
    )
    op.create_table('governance_core_status',
    sa.Column('sandbox_id', sa.String(length=64), nullable=False),
    sa.Column('policy_id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('updated_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('sandbox_id', 'policy_id', name=op.f('pk_governance_core_status'))
    )
    op.create_table('governance_field_labels',
    sa.Column('sandbox_id', sa.String(length=64), nullable=False),
    sa.Column('resource_uri', sa.String(length=500), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('labels', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('updated_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('sandbox_id', 'resource_uri', name=op.f('pk_governance_field_labels'))
    )
    op.create_table('governance_labels',
    sa.Column('sandbox_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('friendly_name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_ms', sa.BigInteger(), nullable=False),
    sa.Column('updated_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('sandbox_id', 'name', name=op.f('pk_governance_labels'))
    )
    op.create_table('governance_policies',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('sandbox_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('action_refs', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('deny', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_ms', sa.BigInteger(), nullable=False),
    sa.Column('updated_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_governance_policies'))
    )
    with op.batch_alter_table('governance_policies', schema=None) as batch_op:
        batch_op.create_index('ix_governance_policies_sandbox', ['sandbox_id', 'created_ms'], unique=False)

    op.create_table('graph_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('sandbox_id', sa.String(length=64), nullable=False),
    sa.Column('graph_id', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('detail', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('at_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_graph_events'))
    )
    with op.batch_alter_table('graph_events', schema=None) as batch_op:
        batch_op.create_index('ix_graph_events_graph', ['sandbox_id', 'graph_id', 'id'], unique=False)

    op.create_table('idempotency_keys',
    sa.Column('sandbox_id', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('status', sa.Integer(), nullable=False),
    sa.Column('body', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('created_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('sandbox_id', 'key', name=op.f('pk_idempotency_keys'))
    )
    op.create_table('identities',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('sandbox_id', sa.String(length=64), nullable=False),
    sa.Column('ns', sa.String(length=64), nullable=False),
    sa.Column('value', sa.String(length=1024), nullable=False),
    sa.Column('graph_id', sa.BigInteger(), nullable=False),
    sa.Column('first_seen_ms', sa.BigInteger(), nullable=False),
    sa.Column('last_seen_ms', sa.BigInteger(), nullable=False),
    sa.Column('event_count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_identities')),
    sa.UniqueConstraint('sandbox_id', 'ns', 'value', name=op.f('uq_identities_sandbox_id_ns_value'))
    )
    with op.batch_alter_table('identities', schema=None) as batch_op:
        batch_op.create_index('ix_identities_graph', ['graph_id'], unique=False)

    op.create_table('identity_links',
    sa.Column('a_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('b_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('graph_id', sa.BigInteger(), nullable=False),
    sa.Column('first_seen_ms', sa.BigInteger(), nullable=False),
    sa.Column('last_seen_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('a_id', 'b_id', name=op.f('pk_identity_links')),
    sqlite_with_rowid=False
    )
    with op.batch_alter_table('identity_links', schema=None) as batch_op:
        batch_op.create_index('ix_identity_links_graph', ['graph_id', 'first_seen_ms', 'last_seen_ms'], unique=False)

    op.create_table('identity_namespaces',
    sa.Column('sandbox_id', sa.String(length=64), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('id_type', sa.String(length=20), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('created_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('sandbox_id', 'code', name=op.f('pk_identity_namespaces'))
    )
    op.create_table('inbox',
    sa.Column('consumer', sa.String(length=100), nullable=False),
    sa.Column('stream', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=600), nullable=False),
    sa.Column('applied_seq', sa.BigInteger(), nullable=False),
    sa.Column('updated_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('consumer', 'stream', 'key', name=op.f('pk_inbox')),
    sqlite_with_rowid=False
    )
    op.create_table('inlets',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('sandbox_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=500), nullable=False),
    sa.Column('dataset_id', sa.String(length=40), nullable=True),
    sa.Column('source_name', sa.String(length=200), nullable=False),
    sa.Column('created_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inlets'))
    )
    op.create_table('merge_policies',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('sandbox_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('schema_class', sa.String(length=200), nullable=False),
    sa.Column('is_default', sa.Boolean(), nullable=False),
    sa.Column('identity_graph', sa.String(length=8), nullable=False),
    sa.Column('attribute_merge', sa.String(length=32), nullable=False),
    sa.Column('dataset_order', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_ms', sa.BigInteger(), nullable=False),
    sa.Column('updated_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_merge_policies'))
    )
    with op.batch_alter_table('merge_policies', schema=None) as batch_op:
        batch_op.create_index('ix_merge_policies_sandbox', ['sandbox_id', 'created_ms'], unique=False)

    op.create_table('organizations',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('created_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_organizations'))
    )
    op.create_table('outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('stream', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=600), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('type', sa.String(length=100), nullable=False),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_ms', sa.BigInteger(), nullable=False),
    sa.Column('published_ms', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox')),
    sa.UniqueConstraint('stream', 'key', 'seq', name=op.f('uq_outbox_stream_key_seq')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_stream_id', ['stream', 'id'], unique=False)
        batch_op.create_index('ix_outbox_unpublished', ['id'], unique=False, sqlite_where=sa.text('published_ms IS NULL'), postgresql_where=sa.text('published_ms IS NULL'))

    op.create_table('parked_keys',
    sa.Column('consumer', sa.String(length=100), nullable=False),
    sa.Column('stream', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=600), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('message_id', sa.BigInteger(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('parked_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('consumer', 'stream', 'key', name=op.f('pk_parked_keys'))
    )
    op.create_table('profile_fragments',
    sa.Column('identity_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('dataset_id', sa.String(length=40), nullable=False),
    sa.Column('sandbox_id', sa.String(length=64), nullable=False),
    sa.Column('body', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('updated_ms', sa.BigInteger(), nullable=False),
    sa.Column('leaf_ms', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('record_id', sa.String(length=500), nullable=True),
    sa.PrimaryKeyConstraint('identity_id', 'dataset_id', name=op.f('pk_profile_fragments'))
    )
    op.create_table('profile_records',
    sa.Column('identity_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('is_event', sa.Boolean(), nullable=False),
    sa.Column('ts_ms', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('dataset_id', sa.String(length=40), nullable=False),
    sa.Column('record_id', sa.String(length=500), nullable=False),
    sa.PrimaryKeyConstraint('identity_id', 'is_event', 'ts_ms', 'dataset_id', 'record_id', name=op.f('pk_profile_records')),
    sqlite_with_rowid=False
    )
    op.create_table('profile_view',
    sa.Column('sandbox_id', sa.String(length=64), nullable=False),
    sa.Column('key', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('policy', sa.String(length=60), nullable=False),
    sa.Column('body', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('event_count', sa.Integer(), nullable=False),
    sa.Column('updated_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('sandbox_id', 'key', name=op.f('pk_profile_view'))
    )
    op.create_table('records',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('sandbox_id', sa.String(length=64), nullable=False),
    sa.Column('dataset_id', sa.String(length=40), nullable=False),
    sa.Column('record_id', sa.String(length=500), nullable=False),
    sa.Column('ts_ms', sa.BigInteger(), nullable=True),
    sa.Column('batch_id', sa.String(length=40), nullable=True),
    sa.Column('xaction_id', sa.String(length=64), nullable=True),
    sa.Column('body', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('received_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_records')),
    sa.UniqueConstraint('dataset_id', 'record_id', name=op.f('uq_records_dataset_id_record_id'))
    )
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.create_index('ix_records_batch', ['batch_id'], unique=False)

    op.create_table('schema_descriptors',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('sandbox_id', sa.String(length=64), nullable=False),
    sa.Column('schema_uri', sa.String(length=500), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('body', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_schema_descriptors'))
    )
    with op.batch_alter_table('schema_descriptors', schema=None) as batch_op:
        batch_op.create_index('ix_descriptors_schema', ['sandbox_id', 'schema_uri'], unique=False)

    op.create_table('schema_resources',
    sa.Column('sandbox_id', sa.String(length=64), nullable=False),
    sa.Column('uri', sa.String(length=500), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('title', sa.String(length=500), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('body', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('profile_enabled', sa.Boolean(), nullable=False),
    sa.Column('created_ms', sa.BigInteger(), nullable=False),
    sa.Column('updated_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('sandbox_id', 'uri', name=op.f('pk_schema_resources'))
    )
    op.create_table('segment_definitions',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('sandbox_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=500), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('expression', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('evaluation', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('continuous', sa.Boolean(), nullable=False),
    sa.Column('merge_policy_id', sa.String(length=40), nullable=True),
    sa.Column('depends_on', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('labels', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_ms', sa.BigInteger(), nullable=False),
    sa.Column('updated_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_segment_definitions'))
    )
    with op.batch_alter_table('segment_definitions', schema=None) as batch_op:
        batch_op.create_index('ix_segment_definitions_sandbox', ['sandbox_id', 'created_ms'], unique=False)

    op.create_table('segment_jobs',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('sandbox_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('request', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('counts', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('errors', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_ms', sa.BigInteger(), nullable=False),
    sa.Column('started_ms', sa.BigInteger(), nullable=True),
    sa.Column('finished_ms', sa.BigInteger(), nullable=True),
    sa.Column('output', sa.LargeBinary(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_segment_jobs'))
    )
    with op.batch_alter_table('segment_jobs', schema=None) as batch_op:
        batch_op.create_index('ix_segment_jobs_sandbox', ['sandbox_id', 'created_ms'], unique=False)

    op.create_table('segment_members',
    sa.Column('segment_id', sa.String(length=40), nullable=False),
    sa.Column('profile_key', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('sandbox_id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('qualified_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('segment_id', 'profile_key', name=op.f('pk_segment_members'))
    )
    with op.batch_alter_table('segment_members', schema=None) as batch_op:
        batch_op.create_index('ix_segment_members_profile', ['sandbox_id', 'profile_key'], unique=False)

    op.create_table('stream_keys',
    sa.Column('stream', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=600), nullable=False),
    sa.Column('last_seq', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('stream', 'key', name=op.f('pk_stream_keys')),
    sqlite_with_rowid=False
    )
    op.create_table('subscriptions',
    sa.Column('consumer', sa.String(length=100), nullable=False),
    sa.Column('stream', sa.String(length=64), nullable=False),
    sa.Column('seen_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('consumer', 'stream', name=op.f('pk_subscriptions')),
    sqlite_with_rowid=False
    )
    op.create_table('timers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('stream', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=600), nullable=False),
    sa.Column('type', sa.String(length=100), nullable=False),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('due_ms', sa.BigInteger(), nullable=False),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('lease_until_ms', sa.BigInteger(), nullable=True),
    sa.Column('fired_ms', sa.BigInteger(), nullable=True),
    sa.Column('lateness_ms', sa.BigInteger(), nullable=True),
    sa.Column('created_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_timers')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('timers', schema=None) as batch_op:
        batch_op.create_index('ix_timers_due', ['due_ms', 'id'], unique=False, sqlite_where=sa.text('fired_ms IS NULL'), postgresql_where=sa.text('fired_ms IS NULL'))
        batch_op.create_index('ix_timers_fired', ['fired_ms'], unique=False, sqlite_where=sa.text('fired_ms IS NOT NULL'), postgresql_where=sa.text('fired_ms IS NOT NULL'))

    op.create_table('sandboxes',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('org_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('settings', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_ms', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], name=op.f('fk_sandboxes_org_id_organizations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sandboxes')),
    sa.UniqueConstraint('org_id', 'name', name=op.f('uq_sandboxes_org_id_name'))
    )
    op.create_table('api_keys',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('sandbox_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('created_ms', sa.BigInteger(), nullable=False),
    sa.Column('expires_ms', sa.BigInteger(), nullable=True),
    sa.Column('revoked_ms', sa.BigInteger(), nullable=True),
    sa.Column('last_used_ms', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['sandbox_id'], ['sandboxes.id'], name=op.f('fk_api_keys_sandbox_id_sandboxes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys'))
    )


def downgrade() -> None:
    op.drop_table('api_keys')
    op.drop_table('sandboxes')
    with op.batch_alter_table('timers', schema=None) as batch_op:
        batch_op.drop_index('ix_timers_fired', sqlite_where=sa.text('fired_ms IS NOT NULL'), postgresql_where=sa.text('fired_ms IS NOT NULL'))
        batch_op.drop_index('ix_timers_due', sqlite_where=sa.text('fired_ms IS NULL'), postgresql_where=sa.text('fired_ms IS NULL'))

    op.drop_table('timers')
    op.drop_table('subscriptions')
    op.drop_table('stream_keys')
    with op.batch_alter_table('segment_members', schema=None) as batch_op:
        batch_op.drop_index('ix_segment_members_profile')

    op.drop_table('segment_members')
    with op.batch_alter_table('segment_jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_segment_jobs_sandbox')

    op.drop_table('segment_jobs')
    with op.batch_alter_table('segment_definitions', schema=None) as batch_op:
        batch_op.drop_index('ix_segment_definitions_sandbox')

    op.drop_table('segment_definitions')
    op.drop_table('schema_resources')
    with op.batch_alter_table('schema_descriptors', schema=None) as batch_op:
        batch_op.drop_index('ix_descriptors_schema')

    op.drop_table('schema_descriptors')
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.drop_index('ix_records_batch')

    op.drop_table('records')
    op.drop_table('profile_view')
    op.drop_table('profile_records')
    op.drop_table('profile_fragments')
    op.drop_table('parked_keys')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_unpublished', sqlite_where=sa.text('published_ms IS NULL'), postgresql_where=sa.text('published_ms IS NULL'))
        batch_op.drop_index('ix_outbox_stream_id')

    op.drop_table('outbox')
    op.drop_table('organizations')
    with op.batch_alter_table('merge_policies', schema=None) as batch_op:
        batch_op.drop_index('ix_merge_policies_sandbox')

    op.drop_table('merge_policies')
    op.drop_table('inlets')
    op.drop_table('inbox')
    op.drop_table('identity_namespaces')
    with op.batch_alter_table('identity_links', schema=None) as batch_op:
        batch_op.drop_index('ix_identity_links_graph')

    op.drop_table('identity_links')
    with op.batch_alter_table('identities', schema=None) as batch_op:
        batch_op.drop_index('ix_identities_graph')

    op.drop_table('identities')
    op.drop_table('idempotency_keys')
    with op.batch_alter_table('graph_events', schema=None) as batch_op:
        batch_op.drop_index('ix_graph_events_graph')

    op.drop_table('graph_events')
    with op.batch_alter_table('governance_policies', schema=None) as batch_op:
        batch_op.drop_index('ix_governance_policies_sandbox')

    op.drop_table('governance_policies')
    op.drop_table('governance_labels')
    op.drop_table('governance_field_labels')
    op.drop_table('governance_core_status')
    op.drop_table('governance_actions')
    with op.batch_alter_table('failed_records', schema=None) as batch_op:
        batch_op.drop_index('ix_failed_dataset_status')

    op.drop_table('failed_records')
    with op.batch_alter_table('datasets', schema=None) as batch_op:
        batch_op.drop_index('ix_datasets_sandbox')

    op.drop_table('datasets')
    op.drop_table('consumer_offsets')
    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.drop_index('ix_batches_dataset')

    op.drop_table('batches')
    op.drop_table('batch_files')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_sandbox_at')

    op.drop_table('audit_log')
