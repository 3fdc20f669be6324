"""reminder indexes for the console's dashboard: reminders that ended (stopped, cancelled) by when, and repeats by
when they were asked for, without reading a year of reminders

Revision ID: c4f6a8b0d2e1
Revises: b8e2d4f6a0c3
Create Date: 2026-12-06 05:00:00
"""
from alembic import op


revision = 'c4f6a8b0d2e1'
down_revision = 'b8e2d4f6a0c3'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_reminders_state_updated_at', 'reminders', ['state', 'updated_at'], unique=False)
    op.create_index('ix_reminders_parent_id_created_at', 'reminders', ['parent_id', 'created_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_reminders_parent_id_created_at', table_name='reminders')
    op.drop_index('ix_reminders_state_updated_at', table_name='reminders')
