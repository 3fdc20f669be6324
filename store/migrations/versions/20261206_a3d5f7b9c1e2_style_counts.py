"""style counts: messages and fallbacks per local day and style of writing, for the console's dashboard

Revision ID: a3d5f7b9c1e2
Revises: f1c3a5e7b9d2
Create Date: 2026-12-06 02:50:00
"""
from alembic import op
import sqlalchemy as sa


revision = 'a3d5f7b9c1e2'
down_revision = 'f1c3a5e7b9d2'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('message_style_counts',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('style', sa.String(length=16), nullable=False),
    sa.Column('handled', sa.Integer(), nullable=False),
    sa.Column('fallbacks', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'style', name=op.f('pk_message_style_counts'))
    )


def downgrade() -> None:
    op.drop_table('message_style_counts')
