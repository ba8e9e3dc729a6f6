"""TOTP second factor: enrolment, the two-step login, single-use codes, recovery codes, resets."""

from __future__ import annotations

import base64
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
import pytest
from sqlalchemy import select

from bastion.db.engine import transaction
from bastion.db.models import RecoveryCode, TotpCredential
from bastion.security.secret_box import SecretBox
from conftest import PASSWORD, Account, Api

MFA_GRANT = "urn:bastion:mfa"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"basic_auth": True}


def _code(secret: str, *, steps_ahead: int = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + 30 * steps_ahead)


async def _enrolled(api: Api, account: Account) -> tuple[str, list[str]]:
    """Turn TOTP on for ``account``: its secret and recovery codes."""
    started = await api.client.post("/users/me/mfa/totp", headers=account.headers)
    assert started.status_code == 200, started.text
    secret = started.json()["secret"]
    confirmed = await api.client.post(
        "/users/me/mfa/totp/confirm", json={"code": _code(secret)}, headers=account.headers
    )
    assert confirmed.status_code == 200, confirmed.text
    return secret, confirmed.json()["recovery_codes"]


async def _mfa_token(api: Api, account: Account, **form: str) -> str:
    response = await api.login(account.username, **form)
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["error"] == "mfa_required" and "access_token" not in body
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["cache-control"] == "no-store"
    return str(body["mfa_token"])


async def _second_step(api: Api, mfa_token: str, code: str, **form: str) -> httpx.Response:
    data = {"grant_type": MFA_GRANT, "mfa_token": mfa_token, "code": code, **form}
    return await api.client.post("/auth/token", data=data)


async def _events(api: Api, account: Account) -> list[str]:
    admin = await api.account("admin")
    items = (
        await api.client.get(f"/admin/audit?user_id={account.id}", headers=admin.headers)
    ).json()["items"]
    return [item["event"] for item in items]


async def test_enrolment_shows_secret_uri_and_qr_code_once(api: Api) -> None:
    account = await api.account()
    response = await api.client.post("/users/me/mfa/totp", headers=account.headers)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    uri = urlsplit(body["otpauth_uri"])
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    query = parse_qs(uri.query)
    assert query["secret"] == [body["secret"]] and query["issuer"] == ["Bastion"]
    assert account.username in uri.path
    assert body["qr_code"].startswith("data:image/svg+xml;base64,")
    assert b"<svg" in base64.b64decode(body["qr_code"].split(",", 1)[1])
    # Until confirmed, the password alone still logs in.
    assert (await api.login(account.username)).status_code == 200


async def test_the_secret_is_stored_encrypted(api: Api) -> None:
    account = await api.account()
    secret, _ = await _enrolled(api, account)
    async with transaction(api.runtime.sessionmaker) as db:
        stored = await db.get(TotpCredential, account.id)
        assert stored is not None
        sealed = stored.secret_encrypted
    assert secret not in sealed and base64.b32decode(secret) not in sealed.encode()
    assert api.runtime.account_kit is not None
    box = api.runtime.account_kit.totp_box
    assert box.open(sealed, context=account.id) == secret
    with pytest.raises(ValueError):
        box.open(sealed, context="someone-else")
    with pytest.raises(ValueError):
        SecretBox(b"x" * 32, info=b"other").open(sealed, context=account.id)


async def test_a_wrong_first_code_does_not_enable(api: Api) -> None:
    account = await api.account()
    started = await api.client.post("/users/me/mfa/totp", headers=account.headers)
    secret = started.json()["secret"]
    wrong = await api.client.post(
        "/users/me/mfa/totp/confirm", json={"code": _code(secret, steps_ahead=5)},
        headers=account.headers,
    )
    assert wrong.status_code == 400
    assert (await api.login(account.username)).status_code == 200
    missing = await api.account()
    none = await api.client.post(
        "/users/me/mfa/totp/confirm", json={"code": "123456"}, headers=missing.headers
    )
    assert none.status_code == 404


async def test_confirm_gives_ten_recovery_codes_stored_hashed(api: Api) -> None:
    account = await api.account()
    _, codes = await _enrolled(api, account)
    assert len(codes) == 10 == len(set(codes))
    async with transaction(api.runtime.sessionmaker) as db:
        hashes = list(
            await db.scalars(
                select(RecoveryCode.code_hash).where(RecoveryCode.user_id == account.id)
            )
        )
    assert len(hashes) == 10 and not set(codes) & set(hashes)
    again = await api.client.post("/users/me/mfa/totp", headers=account.headers)
    assert again.status_code == 409
    assert {"mfa_enrolment_started", "mfa_enabled"} <= set(await _events(api, account))


async def test_password_then_code_logs_in_with_the_scope_asked_for(api: Api) -> None:
    account = await api.account()
    secret, _ = await _enrolled(api, account)
    mfa_token = await _mfa_token(api, account, scope="me")
    assert mfa_token.startswith("bsm_")
    done = await _second_step(api, mfa_token, _code(secret, steps_ahead=1))
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["scope"] == "me" and body["refresh_token"]
    me = await api.client.get(
        "/users/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.status_code == 200 and me.json()["id"] == account.id
    assert {"mfa_required", "login_succeeded"} <= set(await _events(api, account))


async def test_a_code_is_refused_the_second_time(api: Api) -> None:
    account = await api.account()
    secret, _ = await _enrolled(api, account)
    code = _code(secret, steps_ahead=1)
    first = await _second_step(api, await _mfa_token(api, account), code)
    assert first.status_code == 200
    replay = await _second_step(api, await _mfa_token(api, account), code)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    # An older step than the last one used is refused too.
    older = await _second_step(api, await _mfa_token(api, account), _code(secret))
    assert older.status_code == 400
    assert "mfa_failed" in await _events(api, account)


async def test_the_confirming_code_cannot_log_in(api: Api) -> None:
    account = await api.account()
    started = await api.client.post("/users/me/mfa/totp", headers=account.headers)
    secret = started.json()["secret"]
    code = _code(secret)
    await api.client.post(
        "/users/me/mfa/totp/confirm", json={"code": code}, headers=account.headers
    )
    assert (await _second_step(api, await _mfa_token(api, account), code)).status_code == 400


async def test_a_recovery_code_works_once(api: Api) -> None:
    account = await api.account()
    _, codes = await _enrolled(api, account)
    first = await _second_step(api, await _mfa_token(api, account), codes[3].upper())
    assert first.status_code == 200, first.text
    again = await _second_step(api, await _mfa_token(api, account), codes[3])
    assert again.status_code == 400
    other = await _second_step(api, await _mfa_token(api, account), codes[4].replace("-", ""))
    assert other.status_code == 200
    assert "recovery_code_used" in await _events(api, account)


async def test_an_mfa_token_is_single_use_and_bound_to_its_login(api: Api) -> None:
    account = await api.account()
    secret, _ = await _enrolled(api, account)
    mfa_token = await _mfa_token(api, account)
    wrong = await _second_step(api, mfa_token, "000000")
    assert wrong.status_code == 400
    spent = await _second_step(api, mfa_token, _code(secret, steps_ahead=1))
    assert spent.status_code == 400  # even the right code: the token went with the first try
    for token in ("bsm_forged", "bsr_" + "a" * 43, mfa_token.replace("bsm_", "bsv_")):
        assert (await _second_step(api, token, _code(secret))).status_code == 400
    missing = await api.client.post("/auth/token", data={"grant_type": MFA_GRANT, "code": "1"})
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"


async def test_the_password_alone_gets_no_token_by_any_grant_or_basic(api: Api) -> None:
    account = await api.account()
    await _enrolled(api, account)
    explicit = await api.login(account.username, grant_type="password")
    assert explicit.status_code == 401 and "access_token" not in explicit.json()
    by_email = await api.login(account.email)
    assert by_email.status_code == 401 and "access_token" not in by_email.json()
    basic = await api.client.get("/users/me", auth=(account.username, PASSWORD))
    assert basic.status_code == 401
    no_code = await api.client.post(
        "/auth/token", data={"grant_type": MFA_GRANT, "username": account.username,
                             "password": PASSWORD},
    )
    assert no_code.status_code == 400 and "access_token" not in no_code.json()
    assert (await api.refresh("bsr_" + "a" * 43)).status_code == 400
    # Sessions opened before MFA was on still stand; new ones need the code.
    assert (await api.client.get("/users/me", headers=account.headers)).status_code == 200


async def test_a_wrong_password_of_an_mfa_account_looks_like_any_other(api: Api) -> None:
    account = await api.account()
    await _enrolled(api, account)
    response = await api.login(account.username, "Wrong-Password-42")
    assert response.status_code == 401 and response.json()["error"] == "invalid_grant"
    assert "mfa_token" not in response.json()


@pytest.mark.parametrize("settings_overrides", [{"login_max_failures": 3}])
async def test_wrong_codes_count_toward_the_login_limit(api: Api) -> None:
    account = await api.account()
    await _enrolled(api, account)
    for _ in range(3):
        assert (await _second_step(api, await _mfa_token(api, account), "000000")).status_code == 400
    throttled = await api.login(account.username)
    assert throttled.status_code == 429 and "mfa_token" not in throttled.json()


async def test_a_right_password_does_not_clear_code_failures(api: Api) -> None:
    """Each guess at a code needs a right password; that must not reset the count."""
    account = await api.account()
    await _enrolled(api, account)
    statuses = []
    for _ in range(6):
        response = await api.login(account.username)
        statuses.append(response.status_code)
        if response.status_code == 401:
            await _second_step(api, response.json()["mfa_token"], "000000")
    assert statuses[:5] == [401] * 5 and statuses[5] == 429


async def test_disabling_needs_the_password(api: Api) -> None:
    account = await api.account()
    await _enrolled(api, account)
    wrong = await api.client.request(
        "DELETE", "/users/me/mfa/totp", json={"password": "Wrong-Password-42"},
        headers=account.headers,
    )
    assert wrong.status_code == 403
    done = await api.client.request(
        "DELETE", "/users/me/mfa/totp", json={"password": PASSWORD}, headers=account.headers
    )
    assert done.status_code == 204
    assert (await api.login(account.username)).status_code == 200
    again = await api.client.request(
        "DELETE", "/users/me/mfa/totp", json={"password": PASSWORD}, headers=account.headers
    )
    assert again.status_code == 404
    assert "mfa_disabled" in await _events(api, account)


async def test_an_admin_resets_a_users_second_factor(api: Api) -> None:
    account = await api.account()
    await _enrolled(api, account)
    moderator = await api.account("moderator")
    denied = await api.client.delete(f"/admin/users/{account.id}/mfa", headers=moderator.headers)
    assert denied.status_code == 403
    admin = await api.account("admin")
    reset = await api.client.delete(f"/admin/users/{account.id}/mfa", headers=admin.headers)
    assert reset.status_code == 204
    assert (await api.login(account.username)).status_code == 200
    missing = await api.client.delete(
        "/admin/users/00000000-0000-0000-0000-000000000000/mfa", headers=admin.headers
    )
    assert missing.status_code == 404
    events = (
        await api.client.get(
            f"/admin/audit?user_id={account.id}&event=mfa_reset", headers=admin.headers
        )
    ).json()["items"]
    assert events[0]["detail"] == {"by": admin.id}


async def test_no_code_or_secret_in_the_audit_trail(api: Api) -> None:
    account = await api.account()
    secret, codes = await _enrolled(api, account)
    await _second_step(api, await _mfa_token(api, account), codes[0])
    admin = await api.account("admin")
    trail = (await api.client.get("/admin/audit?limit=100", headers=admin.headers)).text
    assert secret not in trail and all(code not in trail for code in codes)


async def test_the_mfa_token_keeps_the_resource_its_login_asked_for(api: Api) -> None:
    from test_access_model import ORDERS, _claims, _orders_api

    admin = await api.account("admin")
    await _orders_api(api, admin)
    account = await api.account()
    secret, _ = await _enrolled(api, account)
    elsewhere = await _second_step(
        api, await _mfa_token(api, account, resource=ORDERS), _code(secret, steps_ahead=1),
        resource="https://elsewhere.example.com",
    )
    assert elsewhere.status_code == 400 and elsewhere.json()["error"] == "invalid_target"
    done = await _second_step(
        api, await _mfa_token(api, account, resource=ORDERS), _code(secret, steps_ahead=1)
    )
    assert done.status_code == 200, done.text
    claims = _claims(done.json()["access_token"])
    assert claims["aud"] == ORDERS and claims["scope"] == "orders:read"
