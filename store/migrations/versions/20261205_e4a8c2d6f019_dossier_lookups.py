"""dossier lookups: a per-citizen quota on new codes, second-factor tries, the portal's dossier keys

Revision ID: e4a8c2d6f019
Revises: c4a8e1f0d6b2
Create Date: 2026-12-05 12:45:00
"""
from alembic import op
import sqlalchemy as sa
import store.base


revision = 'e4a8c2d6f019'
down_revision = 'c4a8e1f0d6b2'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('dossier_lookups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('first_at', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_at', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('locked_until', store.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('access_key', sa.String(length=128), nullable=True),
    sa.Column('key_until', store.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_dossier_lookups_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dossier_lookups')),
    sa.UniqueConstraint('user_id', 'code_hash', name=op.f('uq_dossier_lookups_user_id'))
    )
    with op.batch_alter_table('dossier_lookups', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dossier_lookups_first_at'), ['first_at'], unique=False)
    with op.batch_alter_table('dossier_follows', schema=None) as batch_op:
        batch_op.add_column(sa.Column('access_key', sa.String(length=128), nullable=True))
    with op.batch_alter_table('dossier_prompts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('verify_code', sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('dossier_prompts', schema=None) as batch_op:
        batch_op.drop_column('verify_code')
    with op.batch_alter_table('dossier_follows', schema=None) as batch_op:
        batch_op.drop_column('access_key')
    with op.batch_alter_table('dossier_lookups', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dossier_lookups_first_at'))
    op.drop_table('dossier_lookups')
