"""sponsored products: campaigns, impressions, clicks, spend per day, and the advertiser of an account

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 01:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('advertiser', sa.String(length=128), nullable=True))

    op.create_table('ad_campaigns',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('advertiser', sa.String(length=128), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('products', sa.JSON(), nullable=False),
    sa.Column('max_cpc', sa.Float(), nullable=False),
    sa.Column('daily_budget', sa.Float(), nullable=False),
    sa.Column('total_budget', sa.Float(), nullable=True),
    sa.Column('spent', sa.Float(), server_default='0', nullable=False),
    sa.Column('starts_at', sa.DateTime(), nullable=False),
    sa.Column('ends_at', sa.DateTime(), nullable=True),
    sa.Column('keywords', sa.JSON(), nullable=False),
    sa.Column('categories', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('ad_campaigns', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ad_campaigns_advertiser'), ['advertiser'], unique=False)

    op.create_table('ad_impressions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.String(length=128), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('price', sa.Float(), nullable=False),
    sa.Column('unit', sa.String(length=160), nullable=True),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['ad_campaigns.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('request_id', 'product_id')
    )
    with op.batch_alter_table('ad_impressions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ad_impressions_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_ad_impressions_campaign_id'), ['campaign_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ad_impressions_request_id'), ['request_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ad_impressions_unit'), ['unit'], unique=False)

    op.create_table('ad_clicks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.String(length=128), nullable=False),
    sa.Column('impression_id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('price_charged', sa.Float(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['impression_id'], ['ad_impressions.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('event_id'),
    sa.UniqueConstraint('impression_id')
    )
    with op.batch_alter_table('ad_clicks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ad_clicks_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_ad_clicks_campaign_id'), ['campaign_id'], unique=False)

    op.create_table('ad_spend_days',
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('spent', sa.Float(), nullable=False),
    sa.Column('clicks', sa.Integer(), nullable=False),
    sa.Column('impressions', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['ad_campaigns.id'], ),
    sa.PrimaryKeyConstraint('campaign_id', 'day')
    )


def downgrade() -> None:
    op.drop_table('ad_spend_days')
    for table, indexes in (('ad_clicks', ('campaign_id', 'at')),
                           ('ad_impressions', ('request_id', 'campaign_id', 'at', 'unit')),
                           ('ad_campaigns', ('advertiser',))):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in indexes:
                batch_op.drop_index(batch_op.f(f'ix_{table}_{column}'))
        op.drop_table(table)
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('advertiser')
