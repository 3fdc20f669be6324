"""console: sign-in links, review-queue decisions, an index for reminders sent per day

Revision ID: b7d41c9e2a63
Revises: 3c5e1f7a9b20
Create Date: 2026-12-05 12:15:00
"""
from alembic import op
import sqlalchemy as sa
import store.base


revision = 'b7d41c9e2a63'
down_revision = '3c5e1f7a9b20'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('console_links',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('created_at', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', store.base.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_console_links'))
    )
    with op.batch_alter_table('console_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_console_links_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_console_links_user_id'), ['user_id'], unique=False)

    with op.batch_alter_table('nlu_review', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status', sa.String(length=16), server_default='open', nullable=False))
        batch_op.add_column(sa.Column('label', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('decided_by', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('decided_at', store.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_nlu_review_status'), ['status'], unique=False)

    with op.batch_alter_table('reminders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reminders_sent_at'), ['sent_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('reminders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reminders_sent_at'))

    with op.batch_alter_table('nlu_review', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_nlu_review_status'))
        batch_op.drop_column('decided_at')
        batch_op.drop_column('decided_by')
        batch_op.drop_column('label')
        batch_op.drop_column('status')

    with op.batch_alter_table('console_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_console_links_user_id'))
        batch_op.drop_index(batch_op.f('ix_console_links_expires_at'))

    op.drop_table('console_links')
