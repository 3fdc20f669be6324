"""handover outbox: ticket messages committed with the update and sent after the commit

Revision ID: 9d2f4b6a1c37
Revises: 5e0a7c1d2b84
Create Date: 2026-12-05 12:10:00
"""
from alembic import op
import sqlalchemy as sa
import store.base


revision = '9d2f4b6a1c37'
down_revision = '5e0a7c1d2b84'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('handover_outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('chat_id', sa.BigInteger(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('direction', sa.String(length=8), nullable=False),
    sa.Column('staff_id', sa.BigInteger(), nullable=True),
    sa.Column('created_at', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('lease_until', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['handover_tickets.id'], name=op.f('fk_handover_outbox_ticket_id_handover_tickets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_handover_outbox'))
    )
    with op.batch_alter_table('handover_outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_handover_outbox_lease_until'), ['lease_until'], unique=False)
        batch_op.create_index(batch_op.f('ix_handover_outbox_ticket_id'), ['ticket_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('handover_outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_handover_outbox_ticket_id'))
        batch_op.drop_index(batch_op.f('ix_handover_outbox_lease_until'))

    op.drop_table('handover_outbox')
