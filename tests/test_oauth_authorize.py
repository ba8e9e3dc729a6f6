"""The authorization code flow with PKCE through the hosted login, and its named attacks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import func, select, update

from bastion.db.engine import transaction
from bastion.db.models import AuthorizationCode, BrowserSession, utcnow
from bastion.services import maintenance
from conftest import Account, Api
from oauth_flow import consent_fields, login_fields, pkce, query_of, read_form
from test_mfa import _enrolled
from test_oauth_clients import basic, register_client

ISSUER = "http://127.0.0.1:8000"  # the settings' default: every test app's issuer
CALLBACK = "https://app.example/cb"


@dataclass
class Flow:
    """One client and one user, driving /authorize over the test client."""

    api: Api
    client: dict[str, Any]
    user: Account
    verifier: str = ""

    def params(self, **extra: str) -> dict[str, str]:
        self.verifier, challenge = pkce()
        params = {
            "response_type": "code", "client_id": self.client["client_id"],
            "redirect_uri": CALLBACK, "scope": "openid me", "state": "st-123",
            "nonce": "n-456", "code_challenge": challenge, "code_challenge_method": "S256",
        }
        params.update(extra)
        return {key: value for key, value in params.items() if value != ""}

    async def authorize(self, **extra: str) -> httpx.Response:
        return await self.api.client.get("/authorize", params=self.params(**extra))

    async def login(self, page: httpx.Response, password: str | None = None) -> httpx.Response:
        fields = login_fields(page.text, self.user.username, password or self.user.password)
        return await self.api.client.post("/authorize", data=fields)

    async def code(self, **extra: str) -> str:
        """Sign in (and consent, for a third-party client): the code the callback gets."""
        answer = await self.authorize(**extra)
        if answer.status_code == 200 and 'value="login"' in answer.text:
            answer = await self.login(answer)
        if answer.status_code == 200:
            answer = await self.api.client.post("/authorize", data=consent_fields(answer.text))
        assert answer.status_code == 303, answer.text
        query = query_of(answer.headers["location"])
        assert answer.headers["location"].startswith(CALLBACK + "?")
        assert query["state"] == "st-123" and query["iss"] == ISSUER
        return query["code"]

    async def redeem(self, code: str, **form: str) -> httpx.Response:
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
                "code_verifier": self.verifier, **form}
        headers = {}
        if self.client["client_secret"] is None:
            data.setdefault("client_id", self.client["client_id"])
        else:
            headers = basic(self.client["client_id"], self.client["client_secret"])
        return await self.api.client.post("/auth/token", data=data, headers=headers)


def assert_error_sent_back(answer: httpx.Response, error: str) -> None:
    """RFC 6749 4.1.2.1: back to the client's redirect URI with error, state and iss; no code."""
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"].startswith(CALLBACK + "?")
    query = query_of(answer.headers["location"])
    assert query["error"] == error and query["state"] == "st-123" and query["iss"] == ISSUER
    assert "code" not in query


async def new_flow(api: Api, *, first_party: bool = True, **body: Any) -> Flow:
    admin = await api.account("admin")
    spec: dict[str, Any] = {
        "type": "public", "redirect_uris": [CALLBACK], "scopes": ["openid", "me"],
        "grant_types": ["authorization_code", "refresh_token"], "first_party": first_party,
        "post_logout_redirect_uris": ["https://app.example/bye"],
    }
    spec.update(body)
    client = await register_client(api, admin, **spec)
    user = await api.account()
    api.client.cookies.clear()
    return Flow(api=api, client=client, user=user)


async def test_code_flow_with_pkce_and_openid(api: Api) -> None:
    flow = await new_flow(api)
    page = await flow.authorize()
    assert page.status_code == 200 and "<form" in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "script" not in csp
    tokens = await flow.redeem(await flow.code())
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    assert set(body["scope"].split()) == {"openid", "me"} and body["refresh_token"]
    jwks = (await api.client.get("/.well-known/jwks.json")).json()
    header = jwt.get_unverified_header(body["id_token"])
    assert header["typ"] == "JWT"
    key = jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == header["kid"]))
    claims = jwt.decode(body["id_token"], key, algorithms=["ES256"], audience=flow.client["client_id"],
                        issuer=ISSUER)
    assert claims["sub"] == flow.user.id and claims["nonce"] == "n-456"
    assert {"auth_time", "sid", "at_hash", "iat", "exp"} <= claims.keys()
    access = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert access["client_id"] == flow.client["client_id"]
    info = await api.client.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert info.status_code == 200 and info.json()["sub"] == flow.user.id
    refreshed = await api.refresh(body["refresh_token"], client_id=flow.client["client_id"])
    assert refreshed.status_code == 200 and "openid" in refreshed.json()["scope"].split()
    # Signed in: the next authorization needs no password.
    again = await flow.authorize()
    assert again.status_code == 303 and "code" in query_of(again.headers["location"])


async def test_only_openid_is_granted_to_a_user_without_it_in_any_role(api: Api) -> None:
    flow = await new_flow(api)
    tokens = (await flow.redeem(await flow.code(scope="openid"))).json()
    assert tokens["scope"] == "openid" and "id_token" in tokens
    info = await api.client.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert info.status_code == 200
    # The password grant never hands openid out by default.
    assert "openid" not in (await api.login(flow.user.username)).json()["scope"].split()


async def test_wrong_or_missing_pkce_verifier(api: Api) -> None:
    flow = await new_flow(api)
    code = await flow.code()
    wrong = await flow.redeem(code, code_verifier="x" * 43)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    # The failed attempt spent the code: the right verifier is too late now.
    assert (await flow.redeem(code)).status_code == 400
    code = await flow.code()
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
            "client_id": flow.client["client_id"]}
    missing = await api.client.post("/auth/token", data=data)
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": ""}, "invalid_request"),
        ({"code_challenge": ""}, "invalid_request"),
        ({"code_challenge": "short"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "openid users:write"}, "invalid_scope"),
        ({"scope": "no-such-scope"}, "invalid_scope"),
        ({"prompt": "none"}, "login_required"),
    ],
)
async def test_errors_go_back_to_the_client_with_state_and_iss(
    api: Api, extra: dict[str, str], error: str
) -> None:
    flow = await new_flow(api)
    answer = await flow.authorize(**extra)
    assert_error_sent_back(answer, error)


async def test_no_state_sent_none_echoed(api: Api) -> None:
    flow = await new_flow(api)
    answer = await flow.authorize(code_challenge_method="plain", state="")
    assert "state" not in query_of(answer.headers["location"])


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example/cb",
        "https://app.example/cb/",
        "https://app.example/cb?next=https://evil.example",
        "https://app.example/cb#x",
        "https://app.example/cb/../evil",
        "https://app.example.evil.example/cb",
        "https://app.example@evil.example/cb",
        "HTTPS://APP.EXAMPLE/CB",
        "https://app.example/cb%2F..%2Fevil",
        "//evil.example/cb",
    ],
)
async def test_open_redirect_attempts_get_a_page_not_a_redirect(api: Api, redirect_uri: str) -> None:
    flow = await new_flow(api)
    answer = await flow.authorize(redirect_uri=redirect_uri)
    assert answer.status_code == 400 and "location" not in answer.headers
    # Even a request that is also wrong otherwise never redirects there.
    answer = await flow.authorize(redirect_uri=redirect_uri, code_challenge_method="plain")
    assert answer.status_code == 400 and "location" not in answer.headers


async def test_unknown_client_gets_a_page(api: Api) -> None:
    flow = await new_flow(api)
    answer = await flow.authorize(client_id="no-such-client")
    assert answer.status_code == 400 and "location" not in answer.headers
    answer = await flow.authorize(client_id="")
    assert answer.status_code == 400 and "location" not in answer.headers


async def test_repeated_parameters_are_refused(api: Api) -> None:
    flow = await new_flow(api)
    params = list(flow.params().items()) + [("redirect_uri", "https://evil.example/cb")]
    answer = await api.client.get("/authorize", params=params)
    assert answer.status_code == 400 and "location" not in answer.headers


async def test_code_reuse_revokes_what_the_first_use_issued(api: Api) -> None:
    flow = await new_flow(api)
    code = await flow.code()
    first = (await flow.redeem(code)).json()
    headers = {"Authorization": f"Bearer {first['access_token']}"}
    assert (await api.client.get("/userinfo", headers=headers)).status_code == 200
    replay = await flow.redeem(code)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert (await api.client.get("/userinfo", headers=headers)).status_code == 401
    assert (await api.refresh(first["refresh_token"], client_id=flow.client["client_id"])).status_code == 400


async def test_a_foreign_clients_code_is_refused(api: Api) -> None:
    flow = await new_flow(api)
    other = await new_flow(api)
    code = await flow.code()
    stolen = await other.redeem(code, code_verifier=flow.verifier)
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"


async def test_redirect_uri_must_match_at_the_token_endpoint(api: Api) -> None:
    flow = await new_flow(api, redirect_uris=[CALLBACK, "https://app.example/other"])
    code = await flow.code()
    answer = await flow.redeem(code, redirect_uri="https://app.example/other")
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


async def test_an_expired_code_is_refused(api: Api) -> None:
    flow = await new_flow(api)
    code = await flow.code()
    async with transaction(api.runtime.sessionmaker) as db:
        await db.execute(update(AuthorizationCode).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert (await flow.redeem(code)).json()["error"] == "invalid_grant"


async def test_confidential_client_authenticates_at_the_token_endpoint(api: Api) -> None:
    flow = await new_flow(api, type="confidential")
    code = await flow.code()
    stranger = await api.client.post("/auth/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
        "code_verifier": flow.verifier, "client_id": flow.client["client_id"],
    })
    assert stranger.status_code == 401 and stranger.json()["error"] == "invalid_client"
    code = await flow.code()
    posted = await api.client.post("/auth/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
        "code_verifier": flow.verifier, "client_id": flow.client["client_id"],
        "client_secret": flow.client["client_secret"],
    })
    assert posted.status_code == 200, posted.text


async def test_login_form_without_csrf_token_or_cookie_is_refused(api: Api) -> None:
    flow = await new_flow(api)
    page = await flow.authorize()
    fields = login_fields(page.text, flow.user.username, flow.user.password)
    forged = await api.client.post("/authorize", data={**fields, "csrf_token": "0" * 64})
    assert forged.status_code == 403 and "location" not in forged.headers
    api.client.cookies.clear()  # a cross-site form: the token of another browser, no cookie
    stolen = await api.client.post("/authorize", data=fields)
    assert stolen.status_code == 403 and "location" not in stolen.headers
    assert "bastion-session" not in stolen.headers.get("set-cookie", "")


async def test_wrong_password_shows_the_form_again_and_counts(api: Api) -> None:
    flow = await new_flow(api)
    page = await flow.authorize()
    for _ in range(5):
        page = await flow.login(page, password="not-the-password")
        assert page.status_code == 401 and "Incorrect username or password" in page.text
    throttled = await flow.login(page)
    assert throttled.status_code == 429 and "Retry-After" in throttled.headers


async def test_third_party_client_asks_consent_once_per_scope_set(api: Api) -> None:
    flow = await new_flow(api, first_party=False)
    answer = await flow.login(await flow.authorize(scope="me"))
    assert answer.status_code == 200 and 'value="consent"' in answer.text
    assert "location" not in answer.headers
    denied = await api.client.post("/authorize", data=consent_fields(answer.text, "deny"))
    assert query_of(denied.headers["location"])["error"] == "access_denied"
    await flow.code(scope="me")  # consents this time
    # Remembered: the same scopes need no consent, a wider request asks again.
    again = await flow.authorize(scope="me")
    assert again.status_code == 303 and "code" in query_of(again.headers["location"])
    wider = await flow.authorize(scope="openid me")
    assert wider.status_code == 200 and 'value="consent"' in wider.text


async def test_consent_cannot_be_skipped(api: Api) -> None:
    flow = await new_flow(api, first_party=False)
    consent_page = await flow.login(await flow.authorize())
    fields = consent_fields(consent_page.text)
    # Without the CSRF cookie (a cross-site post), the consent does not count.
    cookies = dict(api.client.cookies)
    api.client.cookies.clear()
    api.client.cookies.set("bastion-session", cookies["bastion-session"])
    forged = await api.client.post("/authorize", data=fields)
    assert forged.status_code == 403 and "location" not in forged.headers
    # Nor without a session, nor with another action smuggled in.
    api.client.cookies.clear()
    api.client.cookies.set("bastion-csrf", cookies["bastion-csrf"])
    logged_out = await api.client.post("/authorize", data=fields)
    assert logged_out.status_code == 200 and 'value="login"' in logged_out.text


async def test_logout_ends_the_browser_session(api: Api) -> None:
    flow = await new_flow(api)
    tokens = (await flow.redeem(await flow.code())).json()
    bye = await api.client.get("/logout", params={
        "id_token_hint": tokens["id_token"], "post_logout_redirect_uri": "https://app.example/bye",
        "state": "s1",
    })
    assert bye.status_code == 303 and bye.headers["location"] == "https://app.example/bye?state=s1"
    page = await flow.authorize()
    assert page.status_code == 200 and 'value="login"' in page.text
    elsewhere = await api.client.get("/logout", params={
        "id_token_hint": tokens["id_token"], "post_logout_redirect_uri": "https://evil.example/",
    })
    assert elsewhere.status_code == 400 and "location" not in elsewhere.headers


async def test_discovery_lists_the_authorization_server(api: Api) -> None:
    config = (await api.client.get("/.well-known/openid-configuration")).json()
    assert config["authorization_endpoint"] == f"{ISSUER}/authorize"
    assert config["response_types_supported"] == ["code"]
    assert config["code_challenge_methods_supported"] == ["S256"]
    assert config["subject_types_supported"] == ["public"]
    assert config["authorization_response_iss_parameter_supported"] is True
    assert {"client_secret_basic", "client_secret_post", "none"} == set(
        config["token_endpoint_auth_methods_supported"]
    )
    assert config["end_session_endpoint"] == f"{ISSUER}/logout"
    assert "openid" in config["scopes_supported"]


async def test_hosted_login_asks_for_the_second_factor(api: Api) -> None:
    flow = await new_flow(api)
    _, recovery_codes = await _enrolled(api, flow.user)
    api.client.cookies.clear()
    page = await flow.login(await flow.authorize())
    assert page.status_code == 200 and 'value="mfa"' in page.text
    assert "bastion-session" not in page.headers.get("set-cookie", "")
    fields = read_form(page.text).fields
    wrong = await api.client.post("/authorize", data={**fields, "code": "000000"})
    assert wrong.status_code == 401 and 'value="login"' in wrong.text
    page = await flow.login(await flow.authorize())
    fields = read_form(page.text).fields
    done = await api.client.post("/authorize", data={**fields, "code": recovery_codes[0]})
    assert done.status_code == 303, done.text
    assert (await flow.redeem(query_of(done.headers["location"])["code"])).status_code == 200


async def test_a_clients_refresh_token_refreshes_for_that_client_only(api: Api) -> None:
    flow = await new_flow(api, type="confidential")
    tokens = (await flow.redeem(await flow.code())).json()
    other = await new_flow(api)
    stolen = await api.refresh(tokens["refresh_token"], client_id=other.client["client_id"])
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    anonymous = await api.refresh(tokens["refresh_token"])
    assert anonymous.status_code == 400 and anonymous.json()["error"] == "invalid_grant"
    unproven = await api.refresh(tokens["refresh_token"], client_id=flow.client["client_id"])
    assert unproven.status_code == 401 and unproven.json()["error"] == "invalid_client"
    # None of those spent the token: its client, authenticated, still refreshes with it.
    owner = await api.client.post(
        "/auth/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers=basic(flow.client["client_id"], flow.client["client_secret"]),
    )
    assert owner.status_code == 200, owner.text


@pytest.mark.parametrize("settings_overrides", [{"issuer": "https://login.example"}])
async def test_cookies_are_host_prefixed_and_secure_under_an_https_issuer(api: Api) -> None:
    flow = await new_flow(api)
    page = await flow.authorize()
    cookie = page.headers["set-cookie"]
    assert cookie.startswith("__Host-bastion-csrf=")
    assert all(part in cookie for part in ("Secure", "HttpOnly", "SameSite=lax", "Path=/"))
    assert "Domain" not in cookie


@pytest.mark.parametrize("username", ["nul\x00name", "x" * 5000, "\u202e"])
async def test_odd_login_input_is_a_page_not_an_error(api: Api, username: str) -> None:
    flow = await new_flow(api)
    fields = login_fields((await flow.authorize()).text, username, "whatever-password")
    answer = await api.client.post("/authorize", data=fields)
    assert answer.status_code in (400, 401) and 'value="login"' in answer.text


async def test_upkeep_purges_old_codes_and_ended_browser_sessions(api: Api) -> None:
    flow = await new_flow(api)
    await flow.redeem(await flow.code())
    await api.client.get("/logout")
    async with transaction(api.runtime.sessionmaker) as db:
        await db.execute(update(AuthorizationCode).values(expires_at=utcnow() - timedelta(days=2)))
    await maintenance.purge(api.runtime.sessionmaker, audit_retention_days=365)
    async with transaction(api.runtime.sessionmaker) as db:
        assert await db.scalar(select(func.count()).select_from(AuthorizationCode)) == 0
        assert await db.scalar(select(func.count()).select_from(BrowserSession)) == 0


# The audit events of the authorization server, for test_audit's table of actions.


async def _client_created(api: Api, admin: Account, user: Account) -> None:
    await register_client(api, admin, grant_types=["client_credentials"])


async def _client_changed(api: Api, admin: Account, user: Account, how: str) -> None:
    client = await register_client(api, admin, grant_types=["client_credentials"])
    path = f"/admin/clients/{client['client_id']}"
    if how == "update":
        answer = await api.client.patch(path, json={"name": "renamed"}, headers=admin.headers)
    elif how == "rotate":
        answer = await api.client.post(f"{path}/secret", headers=admin.headers)
    else:
        answer = await api.client.delete(path, headers=admin.headers)
    assert answer.status_code in (200, 204), answer.text


async def _consent(api: Api, admin: Account, user: Account) -> None:
    flow = await new_flow(api, first_party=False)
    await flow.code()


async def _consent_revoked(api: Api, admin: Account, user: Account) -> None:
    flow = await new_flow(api, first_party=False)
    await flow.code()
    path = f"/users/me/consents/{flow.client['client_id']}"
    assert (await api.client.delete(path, headers=flow.user.headers)).status_code == 204


async def _code_reused(api: Api, admin: Account, user: Account) -> None:
    flow = await new_flow(api)
    code = await flow.code()
    await flow.redeem(code)
    assert (await flow.redeem(code)).status_code == 400


async def _client_updated(api: Api, admin: Account, user: Account) -> None:
    await _client_changed(api, admin, user, "update")


async def _client_rotated(api: Api, admin: Account, user: Account) -> None:
    await _client_changed(api, admin, user, "rotate")


async def _client_deleted(api: Api, admin: Account, user: Account) -> None:
    await _client_changed(api, admin, user, "delete")


OAUTH_AUDIT_ACTIONS = {
    "client_created": _client_created,
    "client_updated": _client_updated,
    "client_secret_rotated": _client_rotated,
    "client_deleted": _client_deleted,
    "consent_granted": _consent,
    "consent_revoked": _consent_revoked,
    "authorization_code_reused": _code_reused,
}


async def test_prompt_login_and_consent_ask_again(api: Api) -> None:
    flow = await new_flow(api, first_party=False)
    await flow.code()
    again = await flow.authorize(prompt="login")
    assert again.status_code == 200 and 'value="login"' in again.text
    asked = await flow.authorize(prompt="consent")
    assert asked.status_code == 200 and 'value="consent"' in asked.text
    silent = await flow.authorize(prompt="none")
    assert silent.status_code == 303 and "code" in query_of(silent.headers["location"])


async def test_a_disabled_account_loses_its_browser_session(api: Api) -> None:
    flow = await new_flow(api)
    await flow.code()
    admin = await api.account("admin")
    disabled = await api.client.patch(
        f"/admin/users/{flow.user.id}", json={"is_active": False}, headers=admin.headers
    )
    assert disabled.status_code == 200
    page = await flow.authorize()
    assert page.status_code == 200 and 'value="login"' in page.text
    refused = await flow.login(page)
    assert refused.status_code == 403 and "location" not in refused.headers
