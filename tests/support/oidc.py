"""A real OpenID Connect provider for the portal's sign-in tests: the certified `oidc-provider` package from npm,
run by Node on a free loopback port (`tests/support/oidc_provider/provider.mjs`), with users in groups. Its packages are
installed by `make test` (`npm ci` in tests/support/oidc_provider); missing, the tests fail with that command."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

FOLDER = Path(__file__).resolve().parent / "oidc_provider"
CLIENT_SECRET = "portal-test-client-secret"


def require_provider() -> str:
    node = shutil.which("node")
    if node is None or not (FOLDER / "node_modules" / "oidc-provider").is_dir():
        pytest.fail(
            f"the OpenID Connect provider is not installed: apt-get install nodejs npm; npm ci --prefix {FOLDER} "
            "(make test does both)",
            pytrace=False,
        )
    return node


@contextmanager
def oidc_provider(port: int, redirect_uri: str, users: dict[str, list[str]]) -> Iterator[str]:
    """The provider on 127.0.0.1:`port` until the block ends; yields its issuer URL."""
    node = require_provider()
    issuer = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [node, "provider.mjs", str(port), redirect_uri, CLIENT_SECRET, json.dumps(users)],
        cwd=FOLDER,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read() if process.stdout else ""
                raise RuntimeError(f"the OpenID Connect provider did not start:\n{output}")
            time.sleep(0.1)
        yield issuer
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
