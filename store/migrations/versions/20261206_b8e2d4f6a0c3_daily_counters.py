"""daily counters: conversations begun and portal errors by kind, per local day, for the console's dashboard

Revision ID: b8e2d4f6a0c3
Revises: a3d5f7b9c1e2
Create Date: 2026-12-06 04:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = 'b8e2d4f6a0c3'
down_revision = 'a3d5f7b9c1e2'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('conversation_counts',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('conversations', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('day', name=op.f('pk_conversation_counts'))
    )
    op.create_table('portal_error_counts',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('errors', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'kind', name=op.f('pk_portal_error_counts'))
    )


def downgrade() -> None:
    op.drop_table('portal_error_counts')
    op.drop_table('conversation_counts')
