"""roles and scopes as data, resource servers, the audience of a session

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 12:45:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The built-in scopes and what each built-in role holds, as of this revision.
# The todo demo declares its own scopes at startup, like any application does.
BUILTIN_SCOPES = {
    "me": "Read and change your own account",
    "users:read": "Read any user's profile",
    "users:write": "Change, disable and delete users; manage roles, scopes and APIs",
    "audit:read": "Read the security audit trail",
    "tokens:introspect": "Ask whether a token is live (RFC 7662)",
}
BUILTIN_ROLE_SCOPES = {
    "user": ["me"],
    "moderator": ["me", "users:read"],
    "admin": ["me", "users:read", "users:write", "audit:read", "tokens:introspect"],
}


def upgrade() -> None:
    op.create_table('scopes',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('description', sa.String(length=200), nullable=False),
    sa.Column('builtin', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_scopes'))
    )
    op.create_table('resource_servers',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('identifier', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_resource_servers')),
    sa.UniqueConstraint('identifier', name=op.f('uq_resource_servers_identifier'))
    )
    op.create_table('role_scopes',
    sa.Column('role_name', sa.String(length=32), nullable=False),
    sa.Column('scope_name', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['role_name'], ['roles.name'], name=op.f('fk_role_scopes_role_name_roles'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['scope_name'], ['scopes.name'], name=op.f('fk_role_scopes_scope_name_scopes'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('role_name', 'scope_name', name=op.f('pk_role_scopes'))
    )
    op.create_table('resource_server_scopes',
    sa.Column('resource_server_id', sa.String(length=36), nullable=False),
    sa.Column('scope_name', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['resource_server_id'], ['resource_servers.id'], name=op.f('fk_resource_server_scopes_resource_server_id_resource_servers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['scope_name'], ['scopes.name'], name=op.f('fk_resource_server_scopes_scope_name_scopes'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('resource_server_id', 'scope_name', name=op.f('pk_resource_server_scopes'))
    )
    with op.batch_alter_table('roles', schema=None) as batch_op:
        batch_op.add_column(sa.Column('builtin', sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table('auth_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('audience', sa.String(length=255), nullable=True))

    roles = sa.table("roles", sa.column("name", sa.String), sa.column("builtin", sa.Boolean))
    op.execute(roles.update().where(roles.c.name.in_(list(BUILTIN_ROLE_SCOPES))).values(builtin=True))
    now = datetime.now(UTC)
    scopes = sa.table(
        "scopes",
        sa.column("name", sa.String),
        sa.column("description", sa.String),
        sa.column("builtin", sa.Boolean),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    op.bulk_insert(
        scopes,
        [
            {"name": name, "description": text, "builtin": True, "created_at": now}
            for name, text in BUILTIN_SCOPES.items()
        ],
    )
    role_scopes = sa.table(
        "role_scopes", sa.column("role_name", sa.String), sa.column("scope_name", sa.String)
    )
    op.bulk_insert(
        role_scopes,
        [
            {"role_name": role, "scope_name": scope}
            for role, names in BUILTIN_ROLE_SCOPES.items()
            for scope in names
        ],
    )


def downgrade() -> None:
    with op.batch_alter_table('auth_sessions', schema=None) as batch_op:
        batch_op.drop_column('audience')
    with op.batch_alter_table('roles', schema=None) as batch_op:
        batch_op.drop_column('builtin')
    op.drop_table('resource_server_scopes')
    op.drop_table('role_scopes')
    op.drop_table('resource_servers')
    op.drop_table('scopes')
