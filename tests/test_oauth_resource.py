"""RFC 8707 ``resource`` in the authorization code flow: the code is bound to one API, and the
access token, its session and every refresh are for that API and its scopes only."""

from __future__ import annotations

from typing import Any

import jwt
import pytest

from conftest import Api
from oauth_flow import consent_fields, query_of
from test_access_model import _orders_api
from test_oauth_authorize import Flow, assert_error_sent_back, new_flow

ORDERS = "https://orders.example"
BILLING = "https://billing.example"
CLIENT_SCOPES = ["openid", "me", "orders:read", "orders:write"]


def _claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


async def _orders_flow(api: Api, **body: Any) -> Flow:
    """The orders API (its ``orders:read`` granted to users), and a client that may ask for it."""
    admin = await api.account("admin")
    await _orders_api(api, admin)
    billing = await api.client.post(
        "/admin/resource-servers", headers=admin.headers,
        json={"identifier": BILLING, "name": "Billing", "scopes": []},
    )
    assert billing.status_code == 201, billing.text
    return await new_flow(api, scopes=CLIENT_SCOPES, **body)


async def test_the_code_grant_issues_a_token_for_the_resource(api: Api) -> None:
    flow = await _orders_flow(api)
    code = await flow.code(resource=ORDERS, scope="openid orders:read orders:write")
    tokens = await flow.redeem(code)
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    # The API's scopes the user holds (orders:write is no role's): nothing of Bastion's own.
    assert body["scope"] == "orders:read"
    access = _claims(body["access_token"])
    assert access["aud"] == ORDERS and access["scope"] == "orders:read"
    assert access["client_id"] == flow.client["client_id"]
    # The id_token is still for the client.
    id_token = _claims(body["id_token"])
    assert id_token["aud"] == flow.client["client_id"] and id_token["sub"] == flow.user.id
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    assert (await api.client.get("/users/me", headers=bearer)).status_code == 401
    # Refresh keeps the audience and the scopes; another audience is invalid_target.
    refreshed = await api.refresh(body["refresh_token"], client_id=flow.client["client_id"])
    assert refreshed.status_code == 200, refreshed.text
    again = _claims(refreshed.json()["access_token"])
    assert again["aud"] == ORDERS and again["scope"] == "orders:read"
    elsewhere = await api.refresh(
        refreshed.json()["refresh_token"], client_id=flow.client["client_id"], resource=BILLING
    )
    assert elsewhere.status_code == 400 and elsewhere.json()["error"] == "invalid_target"


async def test_without_resource_the_token_is_bastions_own(api: Api) -> None:
    flow = await _orders_flow(api)
    body = (await flow.redeem(await flow.code(scope="openid me orders:read"))).json()
    access = _claims(body["access_token"])
    assert access["aud"] == api.runtime.settings.audience
    assert set(body["scope"].split()) == {"openid", "me"}


async def test_the_default_scope_for_a_resource_is_what_the_client_may_ask_of_it(api: Api) -> None:
    flow = await _orders_flow(api)
    body = (await flow.redeem(await flow.code(resource=ORDERS, scope=""))).json()
    assert body["scope"] == "orders:read" and "id_token" in body
    assert _claims(body["access_token"])["aud"] == ORDERS


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({"resource": "https://unknown.example"}, "invalid_target"),
        ({"resource": ""}, "invalid_target"),
        ({"resource": ORDERS, "scope": "openid me orders:read"}, "invalid_scope"),
        ({"resource": BILLING, "scope": "orders:read"}, "invalid_scope"),
    ],
)
async def test_a_bad_resource_request_goes_back_to_the_client(
    api: Api, extra: dict[str, str], error: str
) -> None:
    flow = await _orders_flow(api)
    params = {**flow.params(), **extra}
    answer = await api.client.get("/authorize", params=params)
    assert_error_sent_back(answer, error)


async def test_two_resources_are_invalid_target(api: Api) -> None:
    flow = await _orders_flow(api)
    params = [*flow.params().items(), ("resource", ORDERS), ("resource", BILLING)]
    answer = await api.client.get("/authorize", params=params)
    assert answer.status_code == 303
    assert query_of(answer.headers["location"])["error"] == "invalid_target"


async def test_an_unknown_resource_never_redirects_to_an_unregistered_uri(api: Api) -> None:
    flow = await _orders_flow(api)
    answer = await flow.authorize(
        resource="https://unknown.example", redirect_uri="https://evil.example/cb"
    )
    assert answer.status_code == 400 and "location" not in answer.headers


async def test_the_token_requests_resource_must_be_the_codes(api: Api) -> None:
    flow = await _orders_flow(api)
    code = await flow.code(resource=ORDERS, scope="orders:read")
    other = await flow.redeem(code, resource=BILLING)
    assert other.status_code == 400 and other.json()["error"] == "invalid_target"
    # The failed attempt spent the code, as any failed redemption does.
    assert (await flow.redeem(code, resource=ORDERS)).json()["error"] == "invalid_grant"
    # A code for Bastion itself cannot be turned into a token for an API.
    code = await flow.code(scope="me")
    widened = await flow.redeem(code, resource=ORDERS)
    assert widened.status_code == 400 and widened.json()["error"] == "invalid_target"
    # Naming the code's own resource again is fine.
    code = await flow.code(resource=ORDERS, scope="orders:read")
    same = await flow.redeem(code, resource=ORDERS)
    assert same.status_code == 200, same.text
    assert _claims(same.json()["access_token"])["aud"] == ORDERS


async def test_a_code_for_a_resource_server_deleted_since_is_refused(api: Api) -> None:
    flow = await _orders_flow(api)
    code = await flow.code(resource=ORDERS, scope="orders:read")
    admin = await api.account("admin")
    servers = (await api.client.get("/admin/resource-servers", headers=admin.headers)).json()
    orders = next(server for server in servers if server["identifier"] == ORDERS)
    gone = await api.client.delete(f"/admin/resource-servers/{orders['id']}", headers=admin.headers)
    assert gone.status_code == 204
    answer = await flow.redeem(code)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


async def test_consent_shows_and_remembers_the_apis_scopes(api: Api) -> None:
    flow = await _orders_flow(api, first_party=False)
    page = await flow.login(await flow.authorize(resource=ORDERS, scope="orders:read"))
    assert page.status_code == 200 and 'value="consent"' in page.text
    assert "orders:read" in page.text and ORDERS in page.text
    allowed = await api.client.post("/authorize", data=consent_fields(page.text))
    code = query_of(allowed.headers["location"])["code"]
    assert _claims((await flow.redeem(code)).json()["access_token"])["aud"] == ORDERS
    # Remembered: the same API scope asks no more.
    again = await flow.authorize(resource=ORDERS, scope="orders:read")
    assert again.status_code == 303 and "code" in query_of(again.headers["location"])
    # Another of the API's scopes, or Bastion's own, asks again.
    wider = await flow.authorize(resource=ORDERS, scope="orders:read orders:write")
    assert wider.status_code == 200 and 'value="consent"' in wider.text
    assert "orders:write" in wider.text
    own = await flow.authorize(scope="me")
    assert own.status_code == 200 and 'value="consent"' in own.text
