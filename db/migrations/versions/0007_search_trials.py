"""search trials: query sets, trials, their configurations, judgments and side-by-side preferences

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 13:50:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('query_sets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('queries', sa.JSON(), nullable=False),
    sa.Column('traffic_share', sa.Float(), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name', 'version')
    )
    op.create_table('trials',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('query_set_id', sa.Integer(), nullable=False),
    sa.Column('depth', sa.Integer(), nullable=False),
    sa.Column('scale', sa.JSON(), nullable=False),
    sa.Column('catalog_version_id', sa.Integer(), nullable=True),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['query_set_id'], ['query_sets.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    with op.batch_alter_table('trials', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_trials_query_set_id'), ['query_set_id'], unique=False)

    op.create_table('trial_configs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('trial_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('try_number', sa.Integer(), nullable=False),
    sa.Column('preset_id', sa.Integer(), nullable=True),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('rankings', sa.JSON(), nullable=False),
    sa.Column('embedding_model', sa.String(length=128), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['trial_id'], ['trials.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('trial_configs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_trial_configs_trial_id'), ['trial_id'], unique=False)

    op.create_table('trial_judgments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('trial_id', sa.Integer(), nullable=False),
    sa.Column('query', sa.Text(), nullable=False),
    sa.Column('product_id', sa.String(length=128), nullable=False),
    sa.Column('grader', sa.String(length=128), nullable=False),
    sa.Column('grade', sa.Float(), nullable=True),
    sa.Column('verdict', sa.String(length=16), nullable=False),
    sa.Column('judged_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['trial_id'], ['trials.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('trial_id', 'query', 'product_id', 'grader')
    )
    with op.batch_alter_table('trial_judgments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_trial_judgments_grader'), ['grader'], unique=False)
        batch_op.create_index(batch_op.f('ix_trial_judgments_trial_id'), ['trial_id'], unique=False)


    op.create_table('trial_preferences',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('trial_id', sa.Integer(), nullable=False),
    sa.Column('query', sa.Text(), nullable=False),
    sa.Column('grader', sa.String(length=128), nullable=False),
    sa.Column('first', sa.String(length=160), nullable=False),
    sa.Column('second', sa.String(length=160), nullable=False),
    sa.Column('first_on_left', sa.Boolean(), nullable=False),
    sa.Column('winner', sa.String(length=16), nullable=False),
    sa.Column('judged_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['trial_id'], ['trials.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('trial_id', 'query', 'grader', 'first', 'second')
    )
    with op.batch_alter_table('trial_preferences', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_trial_preferences_trial_id'), ['trial_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('trial_preferences', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_trial_preferences_trial_id'))

    op.drop_table('trial_preferences')
    with op.batch_alter_table('trial_judgments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_trial_judgments_trial_id'))
        batch_op.drop_index(batch_op.f('ix_trial_judgments_grader'))

    op.drop_table('trial_judgments')
    with op.batch_alter_table('trial_configs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_trial_configs_trial_id'))

    op.drop_table('trial_configs')
    with op.batch_alter_table('trials', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_trials_query_set_id'))

    op.drop_table('trials')
    op.drop_table('query_sets')
