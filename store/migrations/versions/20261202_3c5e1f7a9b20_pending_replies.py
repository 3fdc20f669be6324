"""pending replies: answers kept through a Telegram outage and sent again

Revision ID: 3c5e1f7a9b20
Revises: 87bdb457ee46
Create Date: 2026-12-02 13:00:00
"""
from alembic import op
import sqlalchemy as sa
import store.base


revision = '3c5e1f7a9b20'
down_revision = '87bdb457ee46'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('pending_replies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('chat_id', sa.BigInteger(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('next_at', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pending_replies'))
    )
    with op.batch_alter_table('pending_replies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pending_replies_chat_id'), ['chat_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_pending_replies_next_at'), ['next_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('pending_replies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pending_replies_next_at'))
        batch_op.drop_index(batch_op.f('ix_pending_replies_chat_id'))

    op.drop_table('pending_replies')
