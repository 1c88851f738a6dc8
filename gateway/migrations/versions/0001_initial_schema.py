"""Initial gateway schema: accounts, ledger, leases, API keys, request log, roll-ups.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 12:22:56.757787
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('accounts',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('external_id', sa.String(length=200), nullable=True),
    sa.Column('status', sa.String(length=16), server_default='active', nullable=False),
    sa.Column('balance_micro_p', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('leased_micro_p', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('credited_micro_p', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('spent_micro_p', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('requests', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('external_id')
    )
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.create_index('ix_accounts_updated_at', ['updated_at'], unique=False)

    op.create_table('api_keys',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('account_id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('suffix', sa.String(length=8), nullable=False),
    sa.Column('spend_limit_micro_p', sa.BigInteger(), nullable=True),
    sa.Column('spent_micro_p', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=True),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.Column('last_used_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key_hash')
    )
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.create_index('ix_api_keys_account_id', ['account_id'], unique=False)
        batch_op.create_index('ix_api_keys_updated_at', ['updated_at'], unique=False)

    op.create_table('leases',
    sa.Column('account_id', sa.String(length=36), nullable=False),
    sa.Column('holder_id', sa.String(length=36), nullable=False),
    sa.Column('amount_micro_p', sa.BigInteger(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.PrimaryKeyConstraint('account_id', 'holder_id')
    )
    with op.batch_alter_table('leases', schema=None) as batch_op:
        batch_op.create_index('ix_leases_expires_at', ['expires_at'], unique=False)

    op.create_table('ledger_entries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('amount_micro_p', sa.BigInteger(), nullable=False),
    sa.Column('balance_after_micro_p', sa.BigInteger(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.Column('description', sa.String(length=500), server_default='', nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('idempotency_key')
    )
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_account_id', ['account_id', 'id'], unique=False)

    op.create_table('request_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.String(length=36), nullable=False),
    sa.Column('key_id', sa.String(length=36), nullable=True),
    sa.Column('model', sa.String(length=100), nullable=False),
    sa.Column('provider', sa.String(length=64), nullable=False),
    sa.Column('endpoint', sa.String(length=64), nullable=False),
    sa.Column('stream', sa.Boolean(), nullable=False),
    sa.Column('input_tokens', sa.BigInteger(), nullable=False),
    sa.Column('output_tokens', sa.BigInteger(), nullable=False),
    sa.Column('cost_micro_p', sa.BigInteger(), nullable=False),
    sa.Column('latency_ms', sa.Integer(), nullable=False),
    sa.Column('ttft_ms', sa.Integer(), nullable=True),
    sa.Column('status', sa.Integer(), nullable=False),
    sa.Column('error_class', sa.String(length=100), nullable=True),
    sa.Column('estimated', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('request_id')
    )
    with op.batch_alter_table('request_log', schema=None) as batch_op:
        batch_op.create_index('ix_request_log_account_id', ['account_id', 'id'], unique=False)
        batch_op.create_index('ix_request_log_account_created', ['account_id', 'created_at'], unique=False)
        batch_op.create_index('ix_request_log_account_key', ['account_id', 'key_id', 'id'], unique=False)

    op.create_table('usage_rollups',
    sa.Column('account_id', sa.String(length=36), nullable=False),
    sa.Column('key_id', sa.String(length=36), nullable=False),
    sa.Column('model', sa.String(length=100), nullable=False),
    sa.Column('bucket_start', sa.BigInteger(), nullable=False),
    sa.Column('requests', sa.BigInteger(), nullable=False),
    sa.Column('input_tokens', sa.BigInteger(), nullable=False),
    sa.Column('output_tokens', sa.BigInteger(), nullable=False),
    sa.Column('cost_micro_p', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.UniqueConstraint('account_id', 'key_id', 'model', 'bucket_start', name='uq_usage_rollups_bucket')
    )
    with op.batch_alter_table('usage_rollups', schema=None) as batch_op:
        batch_op.create_index('ix_usage_rollups_account_bucket', ['account_id', 'bucket_start'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('usage_rollups', schema=None) as batch_op:
        batch_op.drop_index('ix_usage_rollups_account_bucket')

    op.drop_table('usage_rollups')
    with op.batch_alter_table('request_log', schema=None) as batch_op:
        batch_op.drop_index('ix_request_log_account_key')
        batch_op.drop_index('ix_request_log_account_created')
        batch_op.drop_index('ix_request_log_account_id')

    op.drop_table('request_log')
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_account_id')

    op.drop_table('ledger_entries')
    with op.batch_alter_table('leases', schema=None) as batch_op:
        batch_op.drop_index('ix_leases_expires_at')

    op.drop_table('leases')
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_index('ix_api_keys_updated_at')
        batch_op.drop_index('ix_api_keys_account_id')

    op.drop_table('api_keys')
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_index('ix_accounts_updated_at')

    op.drop_table('accounts')
