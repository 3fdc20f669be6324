"""privacy consent: the notice version a citizen accepted and when; their no to the review queue

Revision ID: c4a8e1f0d6b2
Revises: 9d2f4b6a1c37
Create Date: 2026-12-05 12:45:00
"""
from alembic import op
import sqlalchemy as sa
import store.base


revision = 'c4a8e1f0d6b2'
down_revision = '9d2f4b6a1c37'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('notice_version', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('notice_accepted_at', store.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('notice_shown', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('review_opt_out', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('review_choice_at', store.base.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('review_choice_at')
        batch_op.drop_column('review_opt_out')
        batch_op.drop_column('notice_shown')
        batch_op.drop_column('notice_accepted_at')
        batch_op.drop_column('notice_version')
