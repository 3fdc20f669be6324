"""areas: districts and wards give way to commune-level units (Bắc Ninh, 1 July 2025)

Subscriptions keep their units in news_subscription_areas (none = the whole province), broadcasts in a
comma-separated `areas` column; stored old ids are rewritten with data/areas_migration.yml
(store/area_migration.py) before the old columns go, so every subscriber stays subscribed.

Revision ID: 5e0a7c1d2b84
Revises: b7d41c9e2a63
Create Date: 2026-12-05 13:00:00
"""
from alembic import op
import sqlalchemy as sa
import store.base

from store.area_migration import load_mapping, rewrite


revision = '5e0a7c1d2b84'
down_revision = 'b7d41c9e2a63'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('news_subscription_areas',
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('area', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['news_subscriptions.user_id'], name=op.f('fk_news_subscription_areas_user_id_news_subscriptions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'area', name=op.f('pk_news_subscription_areas'))
    )
    with op.batch_alter_table('news_subscription_areas', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_news_subscription_areas_area'), ['area'], unique=False)

    op.create_table('news_area_searches',
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('asked_at', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_news_area_searches_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_news_area_searches'))
    )
    with op.batch_alter_table('broadcasts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('areas', sa.Text(), server_default='', nullable=False))

    rewrite(op.get_bind(), load_mapping())

    # Plain ALTER TABLE … DROP COLUMN (SQLite 3.35+), not a batch copy: on SQLite the copy drops the old table,
    # and with foreign keys on that deletes its rows' dependants (the unit rows just written, broadcasts' deliveries).
    op.drop_index(op.f('ix_news_subscriptions_district'), table_name='news_subscriptions')
    for table in ('broadcasts', 'news_subscriptions'):
        for column in ('ward', 'district'):
            op.execute(f'ALTER TABLE {table} DROP COLUMN {column}')


def downgrade() -> None:
    # The old ids cannot be recovered from the units (a unit was formed from several wards): subscribers become
    # subscribers of the whole province, which keeps every one of them subscribed.
    with op.batch_alter_table('news_subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('district', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('ward', sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f('ix_news_subscriptions_district'), ['district'], unique=False)
    with op.batch_alter_table('broadcasts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('district', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('ward', sa.String(length=32), nullable=True))
    op.execute('ALTER TABLE broadcasts DROP COLUMN areas')  # not a batch copy: see upgrade
    op.drop_table('news_area_searches')
    with op.batch_alter_table('news_subscription_areas', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_news_subscription_areas_area'))
    op.drop_table('news_subscription_areas')
