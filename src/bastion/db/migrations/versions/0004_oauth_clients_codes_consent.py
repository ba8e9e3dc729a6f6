"""OAuth clients, authorization codes, browser sessions, consent, the openid scope

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 13:30:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPENID = "openid"
OPENID_DESCRIPTION = "Sign in with OpenID Connect: an id_token naming you"


def upgrade() -> None:
    with op.batch_alter_table('auth_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('client_id', sa.String(length=64), nullable=True))
    op.create_table('oauth_clients',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('redirect_uris', sa.Text(), nullable=False),
    sa.Column('post_logout_redirect_uris', sa.Text(), nullable=False),
    sa.Column('grant_types', sa.String(length=200), nullable=False),
    sa.Column('scopes', sa.String(length=500), nullable=False),
    sa.Column('first_party', sa.Boolean(), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('secret_hash', sa.String(length=64), nullable=True),
    sa.Column('previous_secret_hash', sa.String(length=64), nullable=True),
    sa.Column('previous_secret_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_oauth_clients'))
    )
    op.create_table('authorization_codes',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('redirect_uri', sa.Text(), nullable=False),
    sa.Column('scopes', sa.String(length=500), nullable=False),
    sa.Column('code_challenge', sa.String(length=128), nullable=False),
    sa.Column('nonce', sa.String(length=255), nullable=True),
    sa.Column('browser_session_id', sa.String(length=36), nullable=True),
    sa.Column('auth_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('session_id', sa.String(length=36), nullable=True),
    sa.ForeignKeyConstraint(['client_id'], ['oauth_clients.id'], name=op.f('fk_authorization_codes_client_id_oauth_clients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_authorization_codes_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_authorization_codes')),
    sa.UniqueConstraint('code_hash', name=op.f('uq_authorization_codes_code_hash'))
    )
    with op.batch_alter_table('authorization_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_authorization_codes_client_id'), ['client_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_authorization_codes_user_id'), ['user_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_authorization_codes_expires_at'), ['expires_at'], unique=False)
    op.create_table('browser_sessions',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('auth_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_browser_sessions_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_browser_sessions')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_browser_sessions_token_hash'))
    )
    with op.batch_alter_table('browser_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_browser_sessions_user_id'), ['user_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_browser_sessions_expires_at'), ['expires_at'], unique=False)
    op.create_table('oauth_consents',
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('scopes', sa.String(length=500), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['oauth_clients.id'], name=op.f('fk_oauth_consents_client_id_oauth_clients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_oauth_consents_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'client_id', name=op.f('pk_oauth_consents'))
    )
    scopes = sa.table(
        "scopes",
        sa.column("name", sa.String),
        sa.column("description", sa.String),
        sa.column("builtin", sa.Boolean),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    op.bulk_insert(
        scopes,
        [{"name": OPENID, "description": OPENID_DESCRIPTION, "builtin": True,
          "created_at": datetime.now(UTC)}],
    )


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM role_scopes WHERE scope_name = :name").bindparams(name=OPENID))
    op.execute(sa.text("DELETE FROM scopes WHERE name = :name").bindparams(name=OPENID))
    op.drop_table('oauth_consents')
    with op.batch_alter_table('browser_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_browser_sessions_expires_at'))
        batch_op.drop_index(batch_op.f('ix_browser_sessions_user_id'))
    op.drop_table('browser_sessions')
    with op.batch_alter_table('authorization_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_authorization_codes_expires_at'))
        batch_op.drop_index(batch_op.f('ix_authorization_codes_user_id'))
        batch_op.drop_index(batch_op.f('ix_authorization_codes_client_id'))
    op.drop_table('authorization_codes')
    op.drop_table('oauth_clients')
    with op.batch_alter_table('auth_sessions', schema=None) as batch_op:
        batch_op.drop_column('client_id')
