"""online experiments: experiments, the lists the REST service served, and live events

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 16:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('experiments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('method', sa.String(length=16), nullable=False),
    sa.Column('control_preset_id', sa.Integer(), nullable=False),
    sa.Column('treatment_preset_id', sa.Integer(), nullable=False),
    sa.Column('traffic', sa.Float(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('winner', sa.String(length=16), nullable=True),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('stopped_by', sa.String(length=128), nullable=True),
    sa.Column('stopped_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['control_preset_id'], ['presets.id'], ),
    sa.ForeignKeyConstraint(['treatment_preset_id'], ['presets.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    with op.batch_alter_table('experiments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_experiments_status'), ['status'], unique=False)
        batch_op.create_index('uq_experiments_running', ['status'], unique=True,
                              sqlite_where=sa.text("status = 'running'"),
                              postgresql_where=sa.text("status = 'running'"))

    op.create_table('served_lists',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=False),
    sa.Column('endpoint', sa.String(length=32), nullable=False),
    sa.Column('query', sa.Text(), nullable=True),
    sa.Column('unit', sa.String(length=160), nullable=True),
    sa.Column('experiment_id', sa.Integer(), nullable=True),
    sa.Column('arm', sa.String(length=16), nullable=True),
    sa.Column('products', sa.JSON(), nullable=False),
    sa.Column('teams', sa.JSON(), nullable=True),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('request_id')
    )
    with op.batch_alter_table('served_lists', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_served_lists_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_served_lists_experiment_id'), ['experiment_id'], unique=False)

    op.create_table('live_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.String(length=128), nullable=True),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('product_id', sa.String(length=128), nullable=False),
    sa.Column('session', sa.String(length=128), nullable=True),
    sa.Column('user_id', sa.String(length=128), nullable=True),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.Column('position', sa.Integer(), nullable=True),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('event_id')
    )
    with op.batch_alter_table('live_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_live_events_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_live_events_product_id'), ['product_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_live_events_request_id'), ['request_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_live_events_session'), ['session'], unique=False)
        batch_op.create_index(batch_op.f('ix_live_events_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('experiments', schema=None) as batch_op:
        batch_op.drop_index('uq_experiments_running')
    for table, indexes in (('live_events', ('user_id', 'session', 'request_id', 'product_id', 'at')),
                           ('served_lists', ('experiment_id', 'at')),
                           ('experiments', ('status',))):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in indexes:
                batch_op.drop_index(batch_op.f(f'ix_{table}_{column}'))
        op.drop_table(table)
