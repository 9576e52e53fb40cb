"""The portal on real data for its tests: a copy of the example catalog, October 2026 closed into a SQLite
ledger from the closed-form scenario on a real Prometheus (`chargeback close`'s own function), and the app
with a login mode. `serve` runs it under uvicorn on a free loopback port for the browser tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from chargeback.ledger.close import close_month
from portal.app import PortalConfig, create_app
from portal.identity import LoginSettings, login_settings
from tests.support.catalog_edit import EXAMPLE_CATALOG, copy_example

PERIOD = "2026-10"
UNIT_MEMBER = ("ann", "data-insight-admins")
OTHER_UNIT = "edge-security"
PLATFORM = ("pete", "platform-team")
FINANCE = ("fay", "finance-controllers")


@dataclass(frozen=True)
class IssuedLedger:
    folder: Path
    ledger: Path


def close_october(folder: Path, prometheus_url: str) -> IssuedLedger:
    """October 2026 of the example catalog, closed into `folder`/ledger.db."""
    reports = folder / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    close_month(PERIOD, EXAMPLE_CATALOG, prometheus_url, reports / PERIOD, reports / "ledger.db", issued_by="fay")
    return IssuedLedger(reports, reports / "ledger.db")


def proxy_login() -> LoginSettings:
    """The authenticating proxy on loopback: tests (and the browser) set its headers."""
    return login_settings(
        dev_user=None,
        dev_groups=None,
        trusted_proxies=["127.0.0.1"],
        user_header="X-Forwarded-User",
        groups_header="X-Forwarded-Groups",
    )


def portal_config(
    tmp_path: Path, issued: IssuedLedger, prometheus_url: str | None, login: LoginSettings | None = None
) -> PortalConfig:
    """A config over a fresh catalog copy (approvals edit it) and the shared, already closed ledger."""
    return PortalConfig(
        catalog=copy_example(tmp_path),
        ledger=str(issued.ledger),
        requests=tmp_path / "portal-requests.db",
        reports=issued.folder,
        prometheus=prometheus_url,
        login=login or proxy_login(),
        secret=b"portal-test-key-of-32-bytes-long",
    )


def as_person(name: str, *groups: str) -> dict[str, str]:
    """The headers the proxy sets for a person."""
    return {"X-Forwarded-User": name, "X-Forwarded-Groups": ",".join(groups)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(config: PortalConfig, port: int | None = None) -> Iterator[str]:
    """The portal under uvicorn on 127.0.0.1 (`port`, else a free one) until the block ends; yields its base URL."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the portal did not start within 20 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
