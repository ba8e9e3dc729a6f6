"""Every security event of the contract is recorded by the action that causes it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pyotp
import pytest

from bastion.db.engine import transaction
from bastion.services import one_time_tokens
from bastion.services.audit import EVENTS
from conftest import PASSWORD, Account, Api
from test_oauth_authorize import OAUTH_AUDIT_ACTIONS

Action = Callable[[Api, Account, Account], Awaitable[None]]


async def _register(api: Api, admin: Account, user: Account) -> None:
    assert (await api.register()).status_code == 201


async def _login_ok(api: Api, admin: Account, user: Account) -> None:
    await api.relogin(user)


async def _login_failed(api: Api, admin: Account, user: Account) -> None:
    assert (await api.login(user.username, "Wrong-password-1")).status_code == 401


async def _throttled(api: Api, admin: Account, user: Account) -> None:
    for _ in range(6):
        await api.login(user.username, "Wrong-password-1")


async def _refreshed(api: Api, admin: Account, user: Account) -> None:
    assert (await api.refresh(user.refresh_token)).status_code == 200


async def _reuse(api: Api, admin: Account, user: Account) -> None:
    await api.refresh(user.refresh_token)
    assert (await api.refresh(user.refresh_token)).status_code == 400


async def _logout(api: Api, admin: Account, user: Account) -> None:
    assert (await api.client.post("/auth/logout", headers=user.headers)).status_code == 204


async def _password(api: Api, admin: Account, user: Account) -> None:
    body = {"current_password": PASSWORD, "new_password": "A-brand-new-passphrase"}
    response = await api.client.post("/users/me/password", json=body, headers=user.headers)
    assert response.status_code == 204


async def _key_created(api: Api, admin: Account, user: Account) -> None:
    await api.api_key(user, ["me"])


async def _key_revoked(api: Api, admin: Account, user: Account) -> None:
    await api.api_key(user, ["me"])
    keys = (await api.client.get("/users/me/api-keys", headers=user.headers)).json()["items"]
    path = f"/users/me/api-keys/{keys[0]['id']}"
    assert (await api.client.delete(path, headers=user.headers)).status_code == 204


async def _role(api: Api, admin: Account, user: Account) -> None:
    response = await api.client.patch(
        f"/admin/users/{user.id}", json={"roles": ["user", "moderator"]}, headers=admin.headers
    )
    assert response.status_code == 200


async def _disabled(api: Api, admin: Account, user: Account) -> None:
    response = await api.client.patch(
        f"/admin/users/{user.id}", json={"is_active": False}, headers=admin.headers
    )
    assert response.status_code == 200


async def _deleted(api: Api, admin: Account, user: Account) -> None:
    response = await api.client.delete(f"/admin/users/{user.id}", headers=admin.headers)
    assert response.status_code == 204


async def _admin_call(api: Api, admin: Account, method: str, path: str, **body: object) -> None:
    response = await api.client.request(
        method, path, json=body or None, headers=admin.headers
    )
    assert response.status_code in (200, 201, 204), response.text


async def _scope_created(api: Api, admin: Account, user: Account) -> None:
    await _admin_call(api, admin, "POST", "/admin/scopes", name="orders:read", description="Read")


async def _role_created(api: Api, admin: Account, user: Account) -> None:
    await _admin_call(api, admin, "POST", "/admin/roles", name="clerk", description="Clerks")


async def _role_updated(api: Api, admin: Account, user: Account) -> None:
    await _role_created(api, admin, user)
    await _admin_call(api, admin, "PATCH", "/admin/roles/clerk", scopes=["me"])


async def _role_deleted(api: Api, admin: Account, user: Account) -> None:
    await _role_created(api, admin, user)
    await _admin_call(api, admin, "DELETE", "/admin/roles/clerk")


async def _server_created(api: Api, admin: Account, user: Account) -> str:
    response = await api.client.post(
        "/admin/resource-servers",
        json={"identifier": "https://orders.example", "name": "Orders"},
        headers=admin.headers,
    )
    assert response.status_code == 201, response.text
    server_id: str = response.json()["id"]
    return server_id


async def _server_deleted(api: Api, admin: Account, user: Account) -> None:
    server_id = await _server_created(api, admin, user)
    await _admin_call(api, admin, "DELETE", f"/admin/resource-servers/{server_id}")


async def _link_token(api: Api, user: Account, purpose: str) -> str:
    """A token as a mailed link carries it (the mail itself is tested in test_mail.py)."""
    async with transaction(api.runtime.sessionmaker) as db:
        return await one_time_tokens.issue(
            db, digester=api.runtime.digester, purpose=purpose, user_id=user.id, ttl=600,
            email=user.email.casefold(),
        )


async def _verification_sent(api: Api, admin: Account, user: Account) -> None:
    response = await api.client.post("/auth/verify-email/request", headers=user.headers)
    assert response.status_code == 202


async def _email_verified(api: Api, admin: Account, user: Account) -> None:
    token = await _link_token(api, user, one_time_tokens.VERIFY_EMAIL)
    response = await api.client.post("/auth/verify-email", json={"token": token})
    assert response.status_code == 204


async def _reset_requested(api: Api, admin: Account, user: Account) -> None:
    body = {"email": user.email}
    response = await api.client.post("/auth/password-reset/request", json=body)
    assert response.status_code == 202


async def _password_reset(api: Api, admin: Account, user: Account) -> None:
    token = await _link_token(api, user, one_time_tokens.PASSWORD_RESET)
    body = {"token": token, "new_password": "A-brand-new-passphrase"}
    assert (await api.client.post("/auth/password-reset", json=body)).status_code == 204


async def _enrolment(api: Api, admin: Account, user: Account) -> str:
    response = await api.client.post("/users/me/mfa/totp", headers=user.headers)
    assert response.status_code == 200
    return str(response.json()["secret"])


async def _mfa_on(api: Api, admin: Account, user: Account) -> list[str]:
    code = pyotp.TOTP(await _enrolment(api, admin, user)).now()
    response = await api.client.post(
        "/users/me/mfa/totp/confirm", json={"code": code}, headers=user.headers
    )
    assert response.status_code == 200
    return list(response.json()["recovery_codes"])


async def _mfa_off(api: Api, admin: Account, user: Account) -> None:
    await _mfa_on(api, admin, user)
    response = await api.client.request(
        "DELETE", "/users/me/mfa/totp", json={"password": PASSWORD}, headers=user.headers
    )
    assert response.status_code == 204


async def _mfa_reset(api: Api, admin: Account, user: Account) -> None:
    await _mfa_on(api, admin, user)
    await _admin_call(api, admin, "DELETE", f"/admin/users/{user.id}/mfa")


async def _mfa_required(api: Api, admin: Account, user: Account) -> None:
    await _mfa_on(api, admin, user)
    assert (await api.login(user.username)).status_code == 401


async def _mfa_failed(api: Api, admin: Account, user: Account) -> None:
    await _mfa_on(api, admin, user)
    mfa_token = (await api.login(user.username)).json()["mfa_token"]
    form = {"grant_type": "urn:bastion:mfa", "mfa_token": mfa_token, "code": "000000"}
    assert (await api.client.post("/auth/token", data=form)).status_code == 400


async def _recovery_code(api: Api, admin: Account, user: Account) -> None:
    codes = await _mfa_on(api, admin, user)
    mfa_token = (await api.login(user.username)).json()["mfa_token"]
    form = {"grant_type": "urn:bastion:mfa", "mfa_token": mfa_token, "code": codes[0]}
    assert (await api.client.post("/auth/token", data=form)).status_code == 200


ACTIONS: dict[str, Action] = {
    "register": _register,
    "login_succeeded": _login_ok,
    "login_failed": _login_failed,
    "login_throttled": _throttled,
    "token_refreshed": _refreshed,
    "refresh_reuse_detected": _reuse,
    "logout": _logout,
    "password_changed": _password,
    "api_key_created": _key_created,
    "api_key_revoked": _key_revoked,
    "role_changed": _role,
    "user_disabled": _disabled,
    "user_deleted": _deleted,
    "scope_created": _scope_created,
    "role_created": _role_created,
    "role_updated": _role_updated,
    "role_deleted": _role_deleted,
    "resource_server_created": _server_created,
    "resource_server_deleted": _server_deleted,
    "email_verification_sent": _verification_sent,
    "email_verified": _email_verified,
    "password_reset_requested": _reset_requested,
    "password_reset": _password_reset,
    "mfa_enrolment_started": _enrolment,
    "mfa_enabled": _mfa_on,
    "mfa_disabled": _mfa_off,
    "mfa_reset": _mfa_reset,
    "mfa_required": _mfa_required,
    "mfa_failed": _mfa_failed,
    "recovery_code_used": _recovery_code,
    **OAUTH_AUDIT_ACTIONS,
}


def test_every_contract_event_has_an_action() -> None:
    assert set(ACTIONS) == EVENTS


@pytest.mark.parametrize("event", sorted(ACTIONS))
async def test_action_records_its_event(api: Api, event: str) -> None:
    admin = await api.account("admin")
    user = await api.account()

    async def count() -> int:
        response = await api.client.get(
            "/admin/audit", params={"event": event}, headers=admin.headers
        )
        assert response.status_code == 200
        return int(response.json()["total"])

    before = await count()
    await ACTIONS[event](api, admin, user)
    assert await count() > before
    latest = (
        await api.client.get("/admin/audit", params={"event": event, "limit": 1}, headers=admin.headers)
    ).json()["items"][0]
    assert set(latest) == {"id", "at", "event", "user_id", "ip", "detail"}
    assert latest["ip"] == "203.0.113.7"


async def test_audit_is_admin_only_and_filters_by_user(api: Api) -> None:
    admin = await api.account("admin")
    moderator = await api.account("moderator")
    denied = await api.client.get("/admin/audit", headers=moderator.headers)
    assert denied.status_code == 403
    assert 'scope="audit:read"' in denied.headers["www-authenticate"]
    mine = await api.client.get(
        "/admin/audit", params={"user_id": moderator.id}, headers=admin.headers
    )
    assert mine.status_code == 200
    assert {item["user_id"] for item in mine.json()["items"]} == {moderator.id}


async def test_retention_purges_old_events(api: Api) -> None:
    from datetime import timedelta

    from sqlalchemy import func, select

    from bastion.db.engine import transaction
    from bastion.db.models import AuditEvent, utcnow
    from bastion.services import audit

    await api.account()
    async with transaction(api.runtime.sessionmaker) as db:
        assert await audit.purge_older_than(db, days=30) == 0
        removed = await audit.purge_older_than(db, days=30, now=utcnow() + timedelta(days=31))
        assert removed >= 1
        assert await db.scalar(select(func.count()).select_from(AuditEvent)) == 0
