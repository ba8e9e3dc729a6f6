"""An authorization code's resource, the browser session a login came from, consent times

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('authorization_codes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('resource', sa.String(length=255), nullable=True))
    with op.batch_alter_table('auth_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('browser_session_id', sa.String(length=36), nullable=True))
        batch_op.create_index(
            batch_op.f('ix_auth_sessions_browser_session_id'), ['browser_session_id'], unique=False
        )
    with op.batch_alter_table('oauth_consents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('oauth_consents', schema=None) as batch_op:
        batch_op.drop_column('updated_at')
    with op.batch_alter_table('auth_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_auth_sessions_browser_session_id'))
        batch_op.drop_column('browser_session_id')
    with op.batch_alter_table('authorization_codes', schema=None) as batch_op:
        batch_op.drop_column('resource')
