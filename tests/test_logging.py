"""Logs carry a request id and an access line per request, and never a secret."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest

from bastion.log import JsonFormatter, request_id_var
from conftest import PASSWORD, Api
from servers import start_server


@pytest.mark.parametrize("settings_overrides", [{"basic_auth": True}])  # a Basic login too
async def test_no_secret_reaches_any_log_line(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    registered = await api.register("logwatcher", password=PASSWORD)
    assert registered.status_code == 201
    login = (await api.login("logwatcher")).json()
    refreshed = (await api.refresh(login["refresh_token"])).json()
    headers = {"Authorization": f"Bearer {refreshed['access_token']}"}
    key = (
        await api.client.post(
            "/users/me/api-keys", json={"name": "ci", "scopes": ["me"]}, headers=headers
        )
    ).json()["key"]
    assert (await api.client.get("/users/me", headers={"X-API-Key": key})).status_code == 200
    assert (await api.login("logwatcher", "Wrong-Password-42")).status_code == 401
    assert (await api.client.get("/users/me", auth=("logwatcher", PASSWORD))).status_code == 200

    secrets = [
        PASSWORD,
        "Wrong-Password-42",
        login["access_token"],
        login["refresh_token"],
        refreshed["access_token"],
        refreshed["refresh_token"],
        key,
    ]
    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    assert any('"logger": "bastion.access"' in line for line in lines)
    for line in lines:
        for secret in secrets:
            assert secret not in line
            assert secret[:24] not in line


async def test_access_line_has_request_id_and_no_query(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bastion.access")
    response = await api.client.get(
        "/healthz", params={"api_key": "bst_secret"}, headers={"X-Request-ID": "abc-123"}
    )
    assert response.headers["x-request-id"] == "abc-123"
    record = next(r for r in caplog.records if r.name == "bastion.access")
    entry = json.loads(JsonFormatter().format(record))
    assert entry["path"] == "/healthz" and entry["status"] == 200
    assert "bst_secret" not in json.dumps(entry)


async def test_forged_request_ids_are_replaced(api: Api) -> None:
    response = await api.client.get("/healthz", headers={"X-Request-ID": "bad id\r\nx: y"})
    assert response.headers["x-request-id"] != "bad id\r\nx: y"
    assert len(response.headers["x-request-id"]) == 16
    assert request_id_var.get() is None


@pytest.mark.slow
def test_every_worker_logs_json_access_lines(tmp_path: Path) -> None:
    """``--workers 2``: the workers are new processes; each configures LOG_JSON / LOG_LEVEL."""
    log = tmp_path / "serve.log"
    server = start_server(
        tmp_path / "server", workers=2, log=log, BASTION_LOG_JSON="true", BASTION_LOG_LEVEL="info"
    )
    try:
        for _ in range(12):  # a new connection each: both workers take some
            assert httpx.get(f"{server.base}/healthz", headers={"X-Request-ID": "w2"}).is_success
    finally:
        server.stop()
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    access = [e for e in entries if e["logger"] == "bastion.access" and e.get("request_id") == "w2"]
    assert len(access) == 12
    assert all(e["path"] == "/healthz" and e["status"] == 200 for e in access)
