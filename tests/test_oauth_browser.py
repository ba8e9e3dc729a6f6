"""The hosted login in a real Chromium against a real ``bastion serve``: a third-party client's
sign-in and consent back to its redirect URI, and Swagger UI's Authorize with the code flow."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from oauth_flow import admin_headers, create_admin, pkce, query_of
from servers import PASSWORD, Server, free_port, register, running_server
from test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, execute, open_operation

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module: each test opens a browser context of its own (no cookie
    carries over), and the first-party docs client never asks for the consent given here."""
    if not Path(CHROMIUM).exists():
        pytest.skip("no Chromium (/usr/bin/chromium): `make chromium` installs Debian's as root")
    workdir = tmp_path_factory.mktemp("oauth-browser")
    with running_server(workdir) as running:
        create_admin(workdir, "browseradmin")
        register(running.base, "browser-user")
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _sign_in(page: Page) -> None:
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Username or email").fill("browser-user")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_sign_in_and_consent_return_to_the_redirect_uri(server: Server, browser: Browser) -> None:
    callback = f"http://127.0.0.1:{free_port()}/callback"
    created = httpx.post(
        f"{server.base}/admin/clients", headers=admin_headers(server.base, "browseradmin"),
        json={"name": "Photo App", "type": "public", "redirect_uris": [callback],
              "grant_types": ["authorization_code"], "scopes": ["openid", "me"]},
    ).json()
    verifier, challenge = pkce()
    arrived: list[str] = []

    def at_callback(route: Route) -> None:  # the client's page: record where the browser came
        arrived.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<p>signed in</p>")

    context = browser.new_context()
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.route(re.compile(re.escape(callback) + r".*"), at_callback)
    authorize = httpx.URL(f"{server.base}/authorize", params={
        "response_type": "code", "client_id": created["client_id"], "redirect_uri": callback,
        "scope": "openid me", "state": "xyz", "code_challenge": challenge,
        "code_challenge_method": "S256",
    })
    try:
        page.goto(str(authorize))
        _sign_in(page)
        expect(page.get_by_role("heading", name="Allow access?")).to_be_visible()
        expect(page.get_by_text("Photo App")).to_be_visible()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / "oauth-consent.png")
        page.get_by_role("button", name="Allow").click()
        expect(page.get_by_text("signed in")).to_be_visible()
    except Exception:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / "oauth-failure.png", full_page=True)
        raise
    assert len(arrived) == 1 and urlsplit(arrived[0]).path == "/callback"
    query = query_of(arrived[0])
    assert query["state"] == "xyz" and query["iss"] == server.base
    tokens = httpx.post(f"{server.base}/auth/token", data={
        "grant_type": "authorization_code", "code": query["code"], "redirect_uri": callback,
        "code_verifier": verifier, "client_id": created["client_id"],
    })
    assert tokens.status_code == 200, tokens.text
    assert "id_token" in tokens.json()
    # The session cookie is HttpOnly, and no script could have read the page's form token.
    cookies = {cookie["name"]: cookie for cookie in context.cookies(server.base)}
    assert cookies["bastion-session"]["httpOnly"] and cookies["bastion-session"]["sameSite"] == "Lax"
    context.close()


def test_swagger_ui_authorizes_with_the_code_flow_and_pkce(server: Server, browser: Browser) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        page.goto(f"{server.base}/docs")
        page.locator(".btn.authorize").first.click()
        flow = page.locator(".auth-container", has=page.get_by_text("Flow: authorizationCode"))
        box = flow.locator("input[type=checkbox][data-value='me']")
        flow.locator(f"label[for='{box.get_attribute('id')}']").click()
        with page.expect_popup() as opened:
            flow.locator(".btn.authorize").click()
        popup = opened.value
        with page.expect_response(re.compile(r"/auth/token$")) as token:
            _sign_in(popup)  # first party: no consent page; the popup returns the code
        assert token.value.status == 200, token.value.text()
        sent = token.value.request.post_data or ""
        assert "grant_type=authorization_code" in sent and "code_verifier=" in sent
        expect(flow.get_by_role("heading", name="Authorized")).to_be_visible()
        page.locator(".dialog-ux .close-modal").click()
        me = open_operation(page, "get", "/users/me")
        me.locator(".try-out__btn").click()
        expect(execute(page, me, "200")).to_contain_text('"username": "browser-user"')
    except Exception:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / "oauth-docs-failure.png", full_page=True)
        raise
    finally:
        context.close()
