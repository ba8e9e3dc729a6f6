"""The kit installs alone: a fresh venv gets FastAPI, PyJWT and httpx, and nothing of Bastion's."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

KIT = Path(__file__).parent.parent
SERVER_ONLY = ("bastion", "sqlalchemy", "argon2-cffi", "pwdlib", "asyncpg", "aiosqlite", "alembic")
PROBE = """
import importlib.metadata as metadata, importlib.util, json
import bastion_resource
print(json.dumps({
    "requires": metadata.requires("bastion-resource"),
    "installed": sorted(d.metadata["Name"].lower() for d in metadata.distributions()),
    "bastion_importable": importlib.util.find_spec("bastion") is not None,
    "typed": (importlib.util.find_spec("bastion_resource").submodule_search_locations[0]
              + "/py.typed"),
}))
"""


def _pypi_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=3).close()
    except OSError:
        return False
    return True


def test_the_kit_installs_alone_in_a_fresh_venv(tmp_path: Path) -> None:
    if not _pypi_reachable():
        pytest.skip("pypi.org is not reachable: the fresh-venv install needs it")
    source = tmp_path / "bastion-resource"  # a copy: the build leaves nothing in the tree
    shutil.copytree(KIT, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "tests"))
    venv = tmp_path / "venv"
    # Without pip of its own (bootstrapping one takes longer than the install itself): this
    # interpreter's pip installs into it, resolving against the new venv, which holds nothing.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=60)
    python = str(venv / "bin" / "python")
    install = [sys.executable, "-m", "pip", "--python", python, "install", "-q",
               "--disable-pip-version-check", str(source)]
    subprocess.run(install, check=True, timeout=180, capture_output=True)
    probe = subprocess.run([python, "-c", PROBE], check=True, capture_output=True, text=True)
    found = json.loads(probe.stdout)
    required = {line.split(">")[0].split("[")[0].strip().lower() for line in found["requires"]}
    assert required == {"fastapi", "pyjwt", "httpx"}
    assert not set(SERVER_ONLY) & set(found["installed"]), found["installed"]
    assert not found["bastion_importable"]
    assert Path(found["typed"]).is_file()
