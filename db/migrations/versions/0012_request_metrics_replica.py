"""request_metrics.replica: the service process (replica) that answered each request

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 04:45:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('request_metrics', schema=None) as batch_op:
        batch_op.add_column(sa.Column('replica', sa.String(length=128), nullable=True))
        batch_op.create_index(batch_op.f('ix_request_metrics_replica'), ['replica'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('request_metrics', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_request_metrics_replica'))
        batch_op.drop_column('replica')
