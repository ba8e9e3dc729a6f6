"""Accounts: registration, profiles, password changes, roles, deletion."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial

from sqlalchemy import ColumnElement, bindparam, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from bastion.db.engine import on_commit
from bastion.db.models import ApiKey, AuthSession, TotpCredential, User, UserRole, utcnow
from bastion.db.pagination import paginate
from bastion.errors import Conflict, NotFound, PermissionDenied
from bastion.scopes import DEFAULT_ROLE
from bastion.security.password_policy import check_password
from bastion.security.passwords import PasswordHasher
from bastion.services import audit, todos
from bastion.services.access_model import require_roles
from bastion.services.auth_state import AuthState, UserView
from bastion.services.sessions import revoke_user_sessions


def canonical(value: str) -> str:
    return value.strip().casefold()


# One indexed read for a login: the user's columns, the hash and the roles.
# Built once (a prebuilt statement keeps its SQL cache key); run with ``login``.
_LOGIN_QUERY = (
    select(
        User.id,
        User.username,
        User.email,
        User.full_name,
        User.is_active,
        User.created_at,
        User.email_verified_at,
        User.hashed_password,
        func.aggregate_strings(UserRole.role_name, " ").label("roles"),
        TotpCredential.confirmed_at.label("second_factor_since"),
    )
    .outerjoin(UserRole, UserRole.user_id == User.id)
    .outerjoin(TotpCredential, TotpCredential.user_id == User.id)
    .where(
        or_(
            User.username_canonical == bindparam("login"),
            User.email_canonical == bindparam("login"),
        )
    )
    .group_by(User.id, TotpCredential.confirmed_at)  # at most one credential per user
)


@dataclass(frozen=True, slots=True)
class LoginCandidate:
    """The account a login name names, with the hash its password must match."""

    user: UserView
    hashed_password: str
    second_factor: bool = False  # a confirmed TOTP: the password alone does not log in


async def find_login(connection: AsyncConnection, identifier: str) -> LoginCandidate | None:
    """The account whose username or email is ``identifier`` (any case): one read, no ORM."""
    if not identifier.isprintable():  # no account has a control character in its name
        return None
    row = (await connection.execute(_LOGIN_QUERY, {"login": canonical(identifier)})).first()
    if row is None:
        return None
    roles = row.roles.split() if row.roles else ()
    return LoginCandidate(
        user=UserView.build(row, roles),
        hashed_password=row.hashed_password,
        second_factor=row.second_factor_since is not None,
    )


async def upgrade_hash(db: AsyncSession, *, user_id: str, old: str, new: str) -> None:
    """Store a stronger hash of the same password, unless the password changed meanwhile."""
    await db.execute(
        update(User)
        .where(User.id == user_id, User.hashed_password == old)
        .values(hashed_password=new)
        .execution_options(synchronize_session=False)
    )


async def get_user(db: AsyncSession, user_id: str) -> User:
    user = await db.get(User, user_id)
    if user is None:
        raise NotFound("user not found")
    return user


async def _ensure_available(db: AsyncSession, *, username: str | None, email: str | None) -> None:
    conditions: list[ColumnElement[bool]] = []
    if username is not None:
        conditions.append(User.username_canonical == canonical(username))
    if email is not None:
        conditions.append(User.email_canonical == canonical(email))
    if await db.scalar(select(User.id).where(or_(*conditions)).limit(1)) is not None:
        raise Conflict("username or email already taken")


async def create_user(
    db: AsyncSession,
    *,
    passwords: PasswordHasher,
    username: str,
    email: str,
    password: str,
    full_name: str | None = None,
    roles: Iterable[str] = (DEFAULT_ROLE,),
    ip: str | None = None,
) -> User:
    """Register an account; a taken username or email (any case) is a Conflict."""
    role_names = await require_roles(db, roles)
    # Hash first: the availability check opens the write transaction, which
    # (on SQLite) must not stay open while a hash is computed.
    policy = partial(check_password, username=username, email=email)
    hashed = await passwords.hash(password, check=policy)
    await _ensure_available(db, username=username, email=email)
    user = User(
        username=username,
        username_canonical=canonical(username),
        email=email,
        email_canonical=canonical(email),
        full_name=full_name,
        hashed_password=hashed,
        role_links=[UserRole(role_name=name) for name in role_names],
    )
    try:
        async with db.begin_nested():
            db.add(user)
    except IntegrityError as exc:
        raise Conflict("username or email already taken") from exc
    audit.record(db, "register", user_id=user.id, ip=ip, detail={"roles": role_names})
    return user


async def update_profile(
    db: AsyncSession,
    state: AuthState,
    *,
    passwords: PasswordHasher,
    user: User,
    email: str | None,
    full_name: str | None,
    full_name_set: bool,
    current_password: str | None,
) -> User:
    if email is not None and canonical(email) != user.email_canonical:
        await require_password(passwords, user=user, password=current_password)
        await _ensure_available(db, username=None, email=email)
        user.email = email
        user.email_canonical = canonical(email)
        user.email_verified_at = None  # until the new address is confirmed
    if full_name_set:
        user.full_name = full_name
    try:
        async with db.begin_nested():
            await db.flush()
    except IntegrityError as exc:
        raise Conflict("username or email already taken") from exc
    on_commit(db, lambda: state.invalidate("user", user.id))
    return user


async def require_password(
    passwords: PasswordHasher, *, user: User, password: str | None
) -> None:
    if password is None or not (await passwords.verify(password, user.hashed_password)).valid:
        raise PermissionDenied("current password is incorrect")


async def change_password(
    db: AsyncSession,
    state: AuthState,
    *,
    passwords: PasswordHasher,
    user: User,
    current_password: str,
    new_password: str,
    keep_session_id: str | None,
    ip: str | None,
) -> None:
    """Set a new password and end every session of the user but the caller's."""
    await require_password(passwords, user=user, password=current_password)
    policy = partial(check_password, username=user.username, email=user.email)
    user.hashed_password = await passwords.hash(new_password, check=policy)
    await revoke_user_sessions(db, state, user_id=user.id, except_session_id=keep_session_id)
    audit.record(db, "password_changed", user_id=user.id, ip=ip)


async def delete_user(
    db: AsyncSession, state: AuthState, *, user: User, ip: str | None, actor_id: str
) -> None:
    """Delete an account with its sessions, keys and todos (foreign-key cascades)."""
    user_id = user.id
    key_hashes = list(await db.scalars(select(ApiKey.key_hash).where(ApiKey.user_id == user_id)))
    session_ids = list(
        await db.scalars(select(AuthSession.id).where(AuthSession.user_id == user_id))
    )
    await db.execute(delete(User).where(User.id == user_id))
    audit.record(db, "user_deleted", user_id=user_id, ip=ip, detail={"by": actor_id})
    on_commit(db, lambda: state.invalidate("user", user_id))
    todos.changed(db, state, user_id)
    for key_hash in key_hashes:
        on_commit(db, partial(state.invalidate, "api_key", key_hash))
    for session_id in session_ids:
        on_commit(db, partial(state.invalidate, "session", session_id))


async def set_roles(
    db: AsyncSession, state: AuthState, *, user: User, roles: Iterable[str], ip: str | None,
    actor_id: str,
) -> None:
    wanted = await require_roles(db, roles)
    before = user.roles
    if before == wanted:
        return
    kept = [link for link in user.role_links if link.role_name in wanted]
    user.role_links = kept + [UserRole(role_name=name) for name in wanted if name not in before]
    await db.flush()
    audit.record(
        db, "role_changed", user_id=user.id, ip=ip,
        detail={"from": before, "to": wanted, "by": actor_id},
    )
    on_commit(db, lambda: state.invalidate("user", user.id))


async def set_active(
    db: AsyncSession, state: AuthState, *, user: User, active: bool, ip: str | None,
    actor_id: str,
) -> None:
    """Enable or disable an account; disabling ends its sessions and API keys at once."""
    if user.is_active == active:
        return
    user.is_active = active
    if not active:
        await revoke_user_sessions(db, state, user_id=user.id)
        now = utcnow()
        keys = list(
            await db.scalars(
                select(ApiKey).where(ApiKey.user_id == user.id, ApiKey.revoked_at.is_(None))
            )
        )
        for key in keys:
            key.revoked_at = now
            on_commit(db, partial(state.invalidate, "api_key", key.key_hash))
        audit.record(db, "user_disabled", user_id=user.id, ip=ip, detail={"by": actor_id})
    await db.flush()
    on_commit(db, lambda: state.invalidate("user", user.id))


async def search_users(
    db: AsyncSession, *, query: str | None, limit: int, offset: int
) -> tuple[list[User], int]:
    conditions: list[ColumnElement[bool]] = []
    if query:
        pattern = "%" + canonical(query).replace("\\", "\\\\").replace("%", "\\%").replace(
            "_", "\\_"
        ) + "%"
        conditions.append(
            or_(
                User.username_canonical.like(pattern, escape="\\"),
                User.email_canonical.like(pattern, escape="\\"),
            )
        )
    listed = select(User).where(*conditions).order_by(User.created_at, User.id)
    return await paginate(db, listed, limit=limit, offset=offset)
