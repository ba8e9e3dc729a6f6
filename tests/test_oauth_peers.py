"""Independent relying parties against a real ``bastion serve``: panva's openid-client (Node,
OpenID Certified) and Authlib's OAuth 2 client complete discovery, the authorization code flow
with PKCE, id_token validation, userinfo and refresh. The test is the person at the login page."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.jwk import KeySet

from oauth_flow import admin_headers, consent_fields, create_admin, login_fields
from servers import PASSWORD, Server, free_port, register, start_server

pytestmark = pytest.mark.slow
RP_DIR = Path(__file__).parent / "oidc_rp"


@dataclass
class Setup:
    server: Server
    client_id: str
    redirect_uri: str
    username: str
    workdir: Path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """One server; a public third-party client with a loopback redirect URI; one user."""
    workdir = tmp_path_factory.mktemp("peers")
    server = start_server(workdir, log=workdir / "server.log", BASTION_LOG_LEVEL="info")
    try:
        headers = admin_headers(server.base, create_admin(workdir, "peeradmin"))
        redirect_uri = f"http://127.0.0.1:{free_port()}/callback"
        created = httpx.post(
            f"{server.base}/admin/clients",
            headers=headers,
            json={"name": "Peer RP", "type": "public", "redirect_uris": [redirect_uri],
                  "grant_types": ["authorization_code", "refresh_token"],
                  "scopes": ["openid", "me"]},
        )
        assert created.status_code == 201, created.text
        register(server.base, "peeruser")
        yield Setup(server, created.json()["client_id"], redirect_uri, "peeruser", workdir)
    finally:
        server.stop()


def sign_in(setup: Setup, authorization_url: str) -> str:
    """Follow the authorization URL as a browser would: log in, consent; the callback URL."""
    with httpx.Client(base_url=setup.server.base) as browser:
        page = browser.get(authorization_url)
        assert page.status_code == 200, page.text
        answer = browser.post("/authorize", data=login_fields(page.text, setup.username, PASSWORD))
        if answer.status_code == 200:  # a third-party client: the consent page
            answer = browser.post("/authorize", data=consent_fields(answer.text))
        assert answer.status_code == 303, answer.text
        location = answer.headers["location"]
    assert location.startswith(setup.redirect_uri + "?")
    return location


def _node_modules(npm: str) -> Path:
    """The relying party's node_modules, installed by ``npm ci`` once per package.json and
    package-lock.json: kept under the user's cache directory, outside the work tree, so
    that every checkout (CI's fresh clone too) reuses it until the lockfile changes."""
    manifests = [RP_DIR / "package.json", RP_DIR / "package-lock.json"]
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in manifests)).hexdigest()
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bastion-tests"
    installed = root / f"oidc-rp-{digest[:16]}"
    if not (installed / "node_modules" / "openid-client").is_dir():
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="oidc-rp-", dir=root))
        for path in manifests:
            shutil.copy2(path, staging / path.name)
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=staging, check=True,
                       capture_output=True, timeout=300)
        try:
            staging.rename(installed)
        except OSError:  # another run installed it meanwhile
            shutil.rmtree(staging, ignore_errors=True)
    return installed / "node_modules"


@pytest.fixture(scope="module")
def node_rp(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Node, and a directory with rp.mjs beside the cached node_modules."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed for the openid-client relying party (Node 20+)")
    workdir = tmp_path_factory.mktemp("oidc-rp")
    for name in ("package.json", "rp.mjs"):
        shutil.copy2(RP_DIR / name, workdir / name)
    (workdir / "node_modules").symlink_to(_node_modules(npm), target_is_directory=True)
    return Path(node), workdir


def test_openid_client_completes_the_code_flow(setup: Setup, node_rp: tuple[Path, Path]) -> None:
    node, workdir = node_rp
    rp = subprocess.Popen(
        [str(node), "rp.mjs", setup.server.base, setup.client_id, setup.redirect_uri],
        cwd=workdir, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert rp.stdout is not None and rp.stdin is not None
        first = rp.stdout.readline()
        assert first, rp.communicate(timeout=30)[1]
        callback = sign_in(setup, json.loads(first)["authorization_url"])
        out, err = rp.communicate(callback + "\n", timeout=60)
    finally:
        if rp.poll() is None:
            rp.kill()
    assert rp.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["iss"] == setup.server.base and result["aud"] == setup.client_id
    assert result["nonce_ok"] and result["sub"] == result["userinfo_sub"]
    assert result["username"] == setup.username and result["refreshed"]
    assert result["end_session_url"].startswith(f"{setup.server.base}/logout?")


def test_authlib_completes_the_code_flow(setup: Setup) -> None:
    config = httpx.get(f"{setup.server.base}/.well-known/openid-configuration").json()
    session = OAuth2Session(
        setup.client_id, redirect_uri=setup.redirect_uri, scope="openid me",
        code_challenge_method="S256", token_endpoint_auth_method="none",
    )
    verifier, nonce = generate_token(48), generate_token(20)
    url, state = session.create_authorization_url(
        config["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )
    callback = sign_in(setup, url)
    token = session.fetch_token(
        config["token_endpoint"], authorization_response=callback, code_verifier=verifier,
        state=state,
    )
    keys = KeySet.import_key_set(httpx.get(config["jwks_uri"]).json())
    id_token = jwt.decode(token["id_token"], keys, algorithms=config[
        "id_token_signing_alg_values_supported"
    ])
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": config["issuer"]},
        aud={"essential": True, "value": setup.client_id},
        nonce={"essential": True, "value": nonce},
        sub={"essential": True}, exp={"essential": True}, iat={"essential": True},
    ).validate(id_token.claims)
    assert id_token.header["typ"] == "JWT"
    userinfo = session.get(config["userinfo_endpoint"]).json()
    assert userinfo["sub"] == id_token.claims["sub"]
    refreshed = session.refresh_token(config["token_endpoint"], refresh_token=token["refresh_token"])
    assert refreshed["access_token"] != token["access_token"]
    session.close()


def test_no_code_token_or_secret_reaches_the_log(setup: Setup) -> None:
    """Runs after the flows above: the server's log names paths, never their credentials."""
    log = (setup.workdir / "server.log").read_text()
    assert "/authorize" in log and "/auth/token" in log
    for prefix in ("bac_", "bsr_", "bbs_", "bcs_", "code=", "code_verifier", "eyJ", PASSWORD):
        assert prefix not in log, prefix
