"""staff copy deletions: staff-group messages about a citizen who used /forget, to delete from Telegram

Revision ID: f1c3a5e7b9d2
Revises: e4a8c2d6f019
Create Date: 2026-12-05 12:50:00
"""
from alembic import op
import sqlalchemy as sa
import store.base


revision = 'f1c3a5e7b9d2'
down_revision = 'e4a8c2d6f019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('staff_copy_deletions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('group_id', sa.BigInteger(), nullable=False),
    sa.Column('message_id', sa.BigInteger(), nullable=False),
    sa.Column('created_at', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_copy_deletions'))
    )


def downgrade() -> None:
    op.drop_table('staff_copy_deletions')
