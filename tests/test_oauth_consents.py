"""The caller's consents: ``GET /users/me/consents`` lists the clients allowed, and
``DELETE /users/me/consents/{client_id}`` withdraws one, ending what that client holds."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from conftest import Api
from oauth_flow import query_of
from test_oauth_authorize import Flow, new_flow


async def _consents(api: Api, headers: dict[str, str]) -> dict[str, Any]:
    answer = await api.client.get("/users/me/consents", headers=headers)
    assert answer.status_code == 200, answer.text
    listed: dict[str, Any] = answer.json()
    return listed


async def _third_party_tokens(flow: Flow, scope: str = "openid me") -> dict[str, Any]:
    answer = await flow.redeem(await flow.code(scope=scope))
    assert answer.status_code == 200, answer.text
    tokens: dict[str, Any] = answer.json()
    return tokens


async def test_consents_are_listed_with_their_scopes_and_times(api: Api) -> None:
    flow = await new_flow(api, first_party=False)
    assert (await _consents(api, flow.user.headers))["items"] == []
    await flow.code(scope="me")
    listed = await _consents(api, flow.user.headers)
    assert listed["total"] == 1 and listed["limit"] == 50 and listed["offset"] == 0
    (item,) = listed["items"]
    assert item["client_id"] == flow.client["client_id"] and item["client_name"] == "app"
    assert item["scopes"] == ["me"] and item["created_at"] == item["updated_at"]
    # Widened at a later consent: the union, and when it grew.
    await flow.code(scope="openid me")
    (item,) = (await _consents(api, flow.user.headers))["items"]
    assert item["scopes"] == ["me", "openid"]
    assert datetime.fromisoformat(item["updated_at"]) > datetime.fromisoformat(item["created_at"])
    # Nobody else's consents are listed.
    stranger = await api.account()
    assert (await _consents(api, stranger.headers))["total"] == 0


async def test_a_first_party_client_needs_no_consent_and_lists_none(api: Api) -> None:
    flow = await new_flow(api)
    await flow.code()
    assert (await _consents(api, flow.user.headers))["total"] == 0


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_the_consent_routes_want_the_me_scope(api: Api, method: str) -> None:
    path = "/users/me/consents" + ("/some-client" if method == "DELETE" else "")
    assert (await api.client.request(method, path)).status_code == 401
    narrow = await api.account(scope="todos:read")
    assert (await api.client.request(method, path, headers=narrow.headers)).status_code == 403


async def test_withdrawing_ends_the_clients_sessions_and_asks_again(api: Api) -> None:
    flow = await new_flow(api, first_party=False)
    tokens = await _third_party_tokens(flow)
    # Another client the same user allowed keeps its consent.
    other = await new_flow(api, first_party=False)
    other.user = flow.user
    kept = await _third_party_tokens(other)
    path = f"/users/me/consents/{flow.client['client_id']}"
    withdrawn = await api.client.delete(path, headers=flow.user.headers)
    assert withdrawn.status_code == 204, withdrawn.text
    refused = await api.refresh(tokens["refresh_token"], client_id=flow.client["client_id"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await api.client.get("/userinfo", headers=bearer)).status_code == 401
    # Still signed in at the browser, but the client must ask again.
    page = await flow.authorize()
    assert page.status_code == 200 and 'value="consent"' in page.text
    silent = await flow.authorize(prompt="none")
    assert query_of(silent.headers["location"])["error"] == "consent_required"
    # The other client, and the user's own password session, go on.
    listed = await _consents(api, flow.user.headers)
    assert [item["client_id"] for item in listed["items"]] == [other.client["client_id"]]
    again = await api.refresh(kept["refresh_token"], client_id=other.client["client_id"])
    assert again.status_code == 200, again.text
    assert (await api.refresh(flow.user.refresh_token)).status_code == 200
    # Withdrawn once: nothing left to withdraw.
    assert (await api.client.delete(path, headers=flow.user.headers)).status_code == 404


async def test_withdrawing_is_404_for_a_client_never_allowed(api: Api) -> None:
    flow = await new_flow(api, first_party=False)
    await flow.code()
    stranger = await api.account()
    for client_id in (flow.client["client_id"], "no-such-client", "not an id"):
        answer = await api.client.delete(
            f"/users/me/consents/{client_id}", headers=stranger.headers
        )
        assert answer.status_code == 404, client_id
    # The owner's consent is untouched by those attempts.
    assert (await _consents(api, flow.user.headers))["total"] == 1


async def test_a_code_not_redeemed_before_withdrawal_is_refused(api: Api) -> None:
    flow = await new_flow(api, first_party=False)
    code = await flow.code()
    path = f"/users/me/consents/{flow.client['client_id']}"
    assert (await api.client.delete(path, headers=flow.user.headers)).status_code == 204
    late = await flow.redeem(code)
    assert late.status_code == 400 and late.json()["error"] == "invalid_grant"
