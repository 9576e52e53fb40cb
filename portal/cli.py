"""`pool-portal`: start the portal. It sits above `infra` and `chargeback` (it uses both), so it is a command of
its own rather than a subcommand of `pool` or `chargeback`, which must not import upwards."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Annotated

import typer

from pool_catalog import load_catalog
from pool_catalog.guard import guard

from .errors import PortalError
from .identity import login_settings
from .oidc import OidcSettings

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
@guard("pool-portal")
def portal(
    catalog: Annotated[Path, typer.Option("--catalog", "-c", help="Catalog directory.", envvar="POOL_CATALOG")] = Path(
        "catalog"
    ),
    ledger: Annotated[
        str,
        typer.Option(
            "--ledger",
            help="The ledger of issued months: a SQLite file or postgresql:// URL.",
            envvar="CHARGEBACK_LEDGER",
        ),
    ] = "reports/ledger.db",
    requests: Annotated[
        Path | None,
        typer.Option(
            "--requests",
            help="SQLite file of namespace requests (default: portal-requests.db beside a "
            "SQLite ledger, else in the current folder).",
        ),
    ] = None,
    reports: Annotated[
        Path | None,
        typer.Option("--reports", help="Folder a close writes its month's reports to (default: the ledger's)."),
    ] = None,
    prometheus: Annotated[
        str | None, typer.Option("--prometheus", help="Prometheus URL for closing a month.", envvar="PROMETHEUS_URL")
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8080,
    dev_user: Annotated[
        str | None,
        typer.Option("--dev-user", help="DEMO ONLY: sign everyone in as this person (marked on every page)."),
    ] = None,
    dev_groups: Annotated[
        str | None, typer.Option("--dev-groups", help="DEMO ONLY: that person's groups, g1,g2.")
    ] = None,
    trusted_proxy: Annotated[
        list[str] | None,
        typer.Option("--trusted-proxy", help="Address or range of the authenticating proxy; repeatable."),
    ] = None,
    user_header: Annotated[str, typer.Option("--user-header", help="Header naming the user.")] = "X-Forwarded-User",
    groups_header: Annotated[
        str, typer.Option("--groups-header", help="Header with the user's groups, comma-separated.")
    ] = "X-Forwarded-Groups",
    oidc_issuer: Annotated[
        str | None, typer.Option("--oidc-issuer", help="OpenID Connect issuer URL (the company's single sign-on).")
    ] = None,
    oidc_client_id: Annotated[str, typer.Option("--oidc-client-id", help="Client id at the provider.")] = "pool-portal",
    oidc_client_secret_file: Annotated[
        Path | None, typer.Option("--oidc-client-secret-file", help="File holding the client secret (chmod 600).")
    ] = None,
    oidc_redirect_uri: Annotated[
        str | None,
        typer.Option(
            "--oidc-redirect-uri",
            help="Where the provider sends people back (default: http://HOST:PORT"
            "/auth/callback; behind TLS, the https address registered at the provider).",
        ),
    ] = None,
    oidc_groups_claim: Annotated[
        str, typer.Option("--oidc-groups-claim", help="ID token claim listing the person's groups.")
    ] = "groups",
    oidc_username_claim: Annotated[
        str, typer.Option("--oidc-username-claim", help="ID token claim naming the person (else sub).")
    ] = "preferred_username",
    session_key_file: Annotated[
        Path | None,
        typer.Option(
            "--session-key-file",
            help="File with the key that signs session cookies (default: a new "
            "random key per start, which signs everyone out on restart).",
        ),
    ] = None,
    session_hours: Annotated[float, typer.Option("--session-hours", help="Sessions expire after this.")] = 8.0,
) -> None:
    """Serve the portal: business units, the platform team and finance in a browser."""
    import uvicorn

    from .app import PortalConfig, create_app

    oidc = None
    if oidc_issuer is not None:
        if oidc_client_secret_file is None:
            raise PortalError("--oidc-issuer needs --oidc-client-secret-file FILE holding the client secret")
        oidc = OidcSettings(
            issuer=oidc_issuer,
            client_id=oidc_client_id,
            client_secret=_secret_file(oidc_client_secret_file, "--oidc-client-secret-file").decode().strip(),
            redirect_uri=oidc_redirect_uri or f"http://{host}:{port}/auth/callback",
            username_claim=oidc_username_claim,
            groups_claim=oidc_groups_claim,
        )
    login = login_settings(
        dev_user=dev_user,
        dev_groups=dev_groups,
        trusted_proxies=trusted_proxy or [],
        user_header=user_header,
        groups_header=groups_header,
        oidc=oidc,
    )
    if not 0 < session_hours <= 24 * 7:
        raise PortalError(f"--session-hours {session_hours}: give a number of hours above 0 and at most 168")
    load_catalog(catalog)  # a catalog that does not validate stops the start with its findings
    sqlite_ledger = "://" not in ledger
    folder = Path(ledger).resolve().parent if sqlite_ledger else Path.cwd()
    key = _session_key(session_key_file)
    config = PortalConfig(
        catalog=catalog,
        ledger=ledger,
        requests=requests or folder / "portal-requests.db",
        reports=reports or folder,
        prometheus=prometheus,
        login=login,
        secret=key,
        session_hours=session_hours,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if login.dev is not None:
        logging.getLogger("pool.portal").warning(
            "DEMO LOGIN: everyone who reaches http://%s:%s is signed in as %s", host, port, login.dev.person.name
        )
    uvicorn.run(create_app(config), host=host, port=port, log_level="info", proxy_headers=False)


def _secret_file(path: Path, flag: str) -> bytes:
    """A secret from a file only its owner may read (a secret never goes on the command line)."""
    try:
        secret = path.read_bytes().strip()
    except OSError as e:
        raise PortalError(f"{flag} {path}: cannot be read ({e.strerror})") from e
    if os.name == "posix" and path.stat().st_mode & 0o077:
        raise PortalError(f"{flag} {path}: others may read it; chmod 600 {path}")
    return secret


def _session_key(path: Path | None) -> bytes:
    if path is None:
        return secrets.token_bytes(32)
    key = _secret_file(path, "--session-key-file")
    if len(key) < 32:
        raise PortalError(
            f"--session-key-file {path}: holds {len(key)} bytes; write at least 32 random bytes "
            "(e.g. openssl rand -hex 32 > FILE)"
        )
    return key


def main() -> None:
    app()


if __name__ == "__main__":
    main()
