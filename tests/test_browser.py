"""Swagger UI at /docs in a real Chromium against a real ``bastion serve``: what a person does."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import FloatRect, Locator, Page, expect, sync_playwright

from servers import PASSWORD, Server, register, running_server

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).parent / ".artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCOPES = ["me", "todos:read", "todos:write"]


@pytest.fixture(params=[{}, {"BASTION_BASIC_AUTH": "true"}], ids=["defaults", "basic-on"])
def server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Server]:
    if not Path(CHROMIUM).exists():
        pytest.skip(
            "no Chromium (/usr/bin/chromium): `make test` installs Debian's chromium when run "
            "as root; otherwise run `apt-get install chromium` as root"
        )
    # A 401 carrying `WWW-Authenticate: Basic` makes Chromium ask for a login (a native
    # dialog; headless, the request just hangs), so Swagger UI would never show it. Bastion
    # offers Basic only to a request that sent Basic itself: with it off (the default) and on.
    with running_server(tmp_path, **request.param) as running:
        yield running


def open_operation(page: Page, method: str, path: str) -> Locator:
    """Expand one operation's block and return it."""
    block = page.locator(
        f".opblock.opblock-{method}",
        has=page.locator(f".opblock-summary-path[data-path='{path}']"),
    )
    block.locator(".opblock-summary").click()
    return block


def execute(page: Page, block: Locator, status: str) -> Locator:
    """Execute (Try it out must be on), wait for the live response; return its body cell.

    No answer may carry a Basic challenge: the browser would pop its sign-in dialog."""
    with page.expect_response(lambda response: response.request.resource_type == "fetch") as sent:
        block.locator(".execute").click()
    challenge = sent.value.headers.get("www-authenticate", "")
    assert "basic" not in challenge.lower(), challenge
    live = block.locator(".live-responses-table")
    expect(live.locator("td.response-col_status:not(.col_header)")).to_have_text(status)
    return live.locator("td.response-col_description:not(.col_header)")


def screenshot(page: Page, block: Locator, name: str) -> None:
    """The operation's block, from its title down to the live response (not the docs below)."""
    top, live = block.bounding_box(), block.locator(".live-responses-table").bounding_box()
    assert top is not None and live is not None
    y = top["y"] + page.evaluate("window.scrollY")
    height = live["y"] + live["height"] - top["y"]
    clip = FloatRect(x=top["x"], y=y, width=top["width"], height=height)
    page.screenshot(path=ARTIFACTS / name, full_page=True, clip=clip)


def test_swagger_ui_authorize_try_it_out_and_logout(server: Server) -> None:
    register(server.base, "browser-user")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "docs-failure.png").unlink(missing_ok=True)
    requested: list[str] = []

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 1000})
        context.set_default_timeout(10_000)
        context.on("request", lambda request: requested.append(request.url))
        page = context.new_page()
        try:
            page.goto(f"{server.base}/docs")
            expect(page.locator(".information-container .title")).to_contain_text("Bastion")

            # Authorize: the OAuth2 password flow, with the three scopes a plain user has.
            page.locator(".btn.authorize").first.click()
            oauth = page.locator(".auth-container", has=page.get_by_text("Flow: password"))
            oauth.locator("#oauth_username").fill("browser-user")
            oauth.locator("#oauth_password").fill(PASSWORD)
            for scope in SCOPES:  # the checkboxes are hidden behind their labels
                box = oauth.locator(f"input[type=checkbox][data-value='{scope}']")
                oauth.locator(f"label[for='{box.get_attribute('id')}']").click()
                expect(box).to_be_checked()
            with page.expect_response(re.compile(r"/auth/token$")) as token:
                oauth.locator(".btn.authorize").click()
            assert token.value.status == 200
            assert token.value.json()["scope"].split() == SCOPES
            expect(oauth.get_by_role("heading", name="Authorized")).to_be_visible()
            page.screenshot(path=ARTIFACTS / "docs-authorized.png")
            page.locator(".dialog-ux .close-modal").click()

            # GET /users/me with that token: 200 and my profile.
            me = open_operation(page, "get", "/users/me")
            me.locator(".try-out__btn").click()
            expect(execute(page, me, "200")).to_contain_text('"username": "browser-user"')
            screenshot(page, me, "docs-me-200.png")

            # POST /todos with the example body edited: 201.
            todo = open_operation(page, "post", "/todos")
            todo.locator(".try-out__btn").click()
            todo.locator("textarea.body-param__text").fill('{"title": "from the browser"}')
            expect(execute(page, todo, "201")).to_contain_text('"title": "from the browser"')
            screenshot(page, todo, "docs-todo-201.png")

            # Logout in the Authorize dialog, then GET /users/me again: 401.
            page.locator(".btn.authorize").first.click()
            oauth.locator("button", has_text="Logout").click()
            expect(oauth.locator("#oauth_username")).to_be_empty()
            page.locator(".dialog-ux .close-modal").click()
            expect(execute(page, me, "401")).to_contain_text('"detail": "not authenticated"')
            screenshot(page, me, "docs-logout-401.png")
        except Exception:
            page.screenshot(path=ARTIFACTS / "docs-failure.png", full_page=True)
            raise
        finally:
            browser.close()
    assert f"{server.base}/docs-static/swagger-ui-bundle.js" in requested
    elsewhere = [url for url in requested if not url.startswith(f"{server.base}/")]
    assert elsewhere == [], f"the browser tried to reach other hosts: {elsewhere}"
