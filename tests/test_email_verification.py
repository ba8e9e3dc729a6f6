"""Email verification: the link a real SMTP delivery carries, address changes, the login gate."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from bastion.db.engine import transaction
from bastion.db.models import OneTimeToken
from bastion.runtime import Runtime
from conftest import PASSWORD, Api
from smtp_inbox import Inbox, smtp_settings, wait_for


@pytest.fixture
def settings_overrides(smtp_url: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    return smtp_settings(smtp_url, request)


REQUIRED = pytest.mark.parametrize(
    "settings_overrides", [{"require_verified_email": True}], indirect=True
)


async def _registered(api: Api, inbox: Inbox, runtime: Runtime) -> tuple[str, str]:
    """A new account by the API, and the token its welcome mail carries."""
    username = api.unique("verify")
    assert (await api.register(username)).status_code == 201
    assert runtime.account_kit is not None
    await runtime.account_kit.mailer.drain()
    return username, inbox.token_for(f"{username}@example.com")


async def _me(api: Api, username: str) -> dict[str, Any]:
    response = await api.client.get("/users/me", auth=(username, PASSWORD))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_registration_mails_a_link_that_verifies_once(
    api: Api, inbox: Inbox, runtime: Runtime
) -> None:
    username, token = await _registered(api, inbox, runtime)
    assert token.startswith("bsv_")
    assert (await _me(api, username))["email_verified"] is False
    first = await api.client.post("/auth/verify-email", json={"token": token})
    assert first.status_code == 204
    assert (await _me(api, username))["email_verified"] is True
    again = await api.client.post("/auth/verify-email", json={"token": token})
    assert again.status_code == 400
    assert again.json() == {"detail": "the link is invalid, expired or already used"}


async def test_tokens_are_stored_only_as_a_hash(
    api: Api, inbox: Inbox, runtime: Runtime
) -> None:
    _, token = await _registered(api, inbox, runtime)
    async with transaction(runtime.sessionmaker) as db:
        stored = list(await db.scalars(select(OneTimeToken.token_hash)))
    assert runtime.digester.digest(token) in stored and token not in stored


@pytest.mark.parametrize("token", ["", "bsv_unknown", "bsp_" + "a" * 43, "x" * 129])
async def test_a_bad_token_is_refused(api: Api, token: str) -> None:
    response = await api.client.post("/auth/verify-email", json={"token": token})
    assert response.status_code in (400, 422)


async def test_an_expired_link_is_refused(api: Api, inbox: Inbox, runtime: Runtime) -> None:
    from sqlalchemy import update

    from bastion.db.models import utcnow

    _, token = await _registered(api, inbox, runtime)
    async with transaction(runtime.sessionmaker) as db:
        await db.execute(update(OneTimeToken).values(expires_at=utcnow()))
    response = await api.client.post("/auth/verify-email", json={"token": token})
    assert response.status_code == 400


async def test_request_sends_a_new_link_and_audits(
    api: Api, inbox: Inbox, runtime: Runtime
) -> None:
    account = await api.account()
    assert runtime.account_kit is not None
    response = await api.client.post("/auth/verify-email/request", headers=account.headers)
    assert response.status_code == 202
    await wait_for(inbox, 1)
    token = inbox.token_for(account.email)
    assert (await api.client.post("/auth/verify-email", json={"token": token})).status_code == 204
    again = await api.client.post("/auth/verify-email/request", headers=account.headers)
    assert again.status_code == 409
    admin = await api.account("admin")
    events = (
        await api.client.get(f"/admin/audit?user_id={account.id}", headers=admin.headers)
    ).json()["items"]
    assert {"email_verification_sent", "email_verified"} <= {e["event"] for e in events}


async def test_request_needs_a_credential_and_is_limited(api: Api) -> None:
    assert (await api.client.post("/auth/verify-email/request")).status_code == 401
    account = await api.account()
    statuses = [
        (await api.client.post("/auth/verify-email/request", headers=account.headers)).status_code
        for _ in range(6)
    ]
    assert statuses == [202] * 5 + [429]


async def test_changing_the_email_unverifies_and_mails_the_new_address(
    api: Api, inbox: Inbox, runtime: Runtime
) -> None:
    username, token = await _registered(api, inbox, runtime)
    new = f"{username}.new@example.com"
    changed = await api.client.patch(
        "/users/me", json={"email": new, "current_password": PASSWORD},
        auth=(username, PASSWORD),
    )
    assert changed.status_code == 200 and changed.json()["email_verified"] is False
    assert runtime.account_kit is not None
    await runtime.account_kit.mailer.drain()
    # The link sent to the old address verifies nothing any more.
    stale = await api.client.post("/auth/verify-email", json={"token": token})
    assert stale.status_code == 400
    fresh = inbox.token_for(new)
    assert (await api.client.post("/auth/verify-email", json={"token": fresh})).status_code == 204
    me = await _me(api, username)
    assert me["email"] == new and me["email_verified"] is True


async def test_a_name_change_keeps_the_verification(
    api: Api, inbox: Inbox, runtime: Runtime
) -> None:
    username, token = await _registered(api, inbox, runtime)
    await api.client.post("/auth/verify-email", json={"token": token})
    patched = await api.client.patch(
        "/users/me", json={"full_name": "Ada"}, auth=(username, PASSWORD)
    )
    assert patched.json()["email_verified"] is True


async def test_unverified_accounts_log_in_by_default(
    api: Api, inbox: Inbox, runtime: Runtime
) -> None:
    username, _ = await _registered(api, inbox, runtime)
    assert (await api.login(username)).status_code == 200


@REQUIRED
async def test_required_verification_refuses_login_until_verified(
    api: Api, inbox: Inbox, runtime: Runtime
) -> None:
    username, token = await _registered(api, inbox, runtime)
    refused = await api.login(username)
    assert refused.status_code == 403
    assert refused.json()["error"] == "invalid_grant"
    basic = await api.client.get("/users/me", auth=(username, PASSWORD))
    assert basic.status_code == 403
    wrong = await api.login(username, "Wrong-Password-42")
    assert wrong.status_code == 401  # the gate is behind the password: it reveals nothing
    assert (await api.client.post("/auth/verify-email", json={"token": token})).status_code == 204
    assert (await api.login(username)).status_code == 200
    assert (await api.client.get("/users/me", auth=(username, PASSWORD))).status_code == 200


async def test_revision_0003_downgrades_and_upgrades(database_url: str) -> None:
    """The schema of this feature is a static, reversible revision."""
    import asyncio

    from sqlalchemy import inspect

    from bastion.db import migrate
    from bastion.db.engine import create_engine

    async def tables() -> tuple[set[str], set[str]]:
        engine = create_engine(database_url)
        try:
            async with engine.connect() as connection:
                def read(sync: Any) -> tuple[set[str], set[str]]:
                    found = inspect(sync)
                    columns = {column["name"] for column in found.get_columns("users")}
                    return set(found.get_table_names()), columns

                return await connection.run_sync(read)
        finally:
            await engine.dispose()

    new_tables = {"one_time_tokens", "totp_credentials", "recovery_codes"}
    names, columns = await tables()
    assert new_tables <= names and "email_verified_at" in columns
    await asyncio.to_thread(migrate.downgrade, database_url, "0002")
    names, columns = await tables()
    assert not new_tables & names and "email_verified_at" not in columns
    await asyncio.to_thread(migrate.upgrade, database_url)
    names, columns = await tables()
    assert new_tables <= names and "email_verified_at" in columns
