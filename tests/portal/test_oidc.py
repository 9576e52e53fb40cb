"""OpenID Connect sign-in against a real provider (`oidc-provider` under Node on 127.0.0.1) in a real browser:
the code flow with PKCE, the groups claim mapped to units and the platform through the catalog; and the ID
token checks (issuer, audience, expiry, nonce) on tokens made here."""

from __future__ import annotations

import base64
import dataclasses
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from portal.identity import login_settings
from portal.oidc import OidcClient, OidcSettings, SignInError
from tests.support.oidc import CLIENT_SECRET, oidc_provider
from tests.support.portal import IssuedLedger, free_port, portal_config, serve
from tests.support.prometheus import ScenarioServer

playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (make venv does)")

pytestmark = [pytest.mark.prometheus, pytest.mark.browser]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
USERS = {"ann": ["data-insight-admins"], "pete": ["platform-team"], "nobody": ["unknown-group"]}


@pytest.fixture
def signed_in_portal(tmp_path: Path, issued: IssuedLedger, priced_prometheus: ScenarioServer) -> Iterator[str]:
    port = free_port()
    redirect = f"http://127.0.0.1:{port}/auth/callback"
    with oidc_provider(free_port(), redirect, USERS) as issuer:
        settings = OidcSettings(issuer, "pool-portal", CLIENT_SECRET, redirect)
        login = login_settings(
            dev_user=None, dev_groups=None, trusted_proxies=[], user_header="u", groups_header="g", oidc=settings
        )
        with serve(portal_config(tmp_path, issued, priced_prometheus.url, login), port=port) as url:
            yield url


def sign_in(page, url: str, who: str, target: str) -> None:
    """Open `target`; the portal sends the browser to the provider, whose login and consent pages we fill."""
    page.goto(f"{url}{target}")
    page.fill("input[name=login]", who)
    page.fill("input[name=password]", "any password")
    page.click("button[type=submit]")
    page.click("text=Continue")
    page.wait_for_url(f"{url}{target}")


def test_sign_in_with_a_real_provider_maps_groups_to_roles(signed_in_portal: str) -> None:
    url = signed_in_portal
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        try:
            ann = browser.new_context().new_page()
            sign_in(ann, url, "ann", "/units/data-insight")
            assert "Data Insight" in ann.inner_text("h1") and ann.inner_text(".who") == "ann"
            assert "DEMO LOGIN" not in ann.content()
            cookie = next(c for c in ann.context.cookies() if c["name"] == "pool_portal_session")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
            assert "code=" not in ann.url and "state=" not in ann.url  # nothing of the sign-in stays in the URL
            assert ann.goto(f"{url}/platform").status == 403
            assert ann.goto(f"{url}/units/edge-security").status == 403

            pete = browser.new_context().new_page()
            sign_in(pete, url, "pete", "/platform")
            assert "Platform" in pete.inner_text("h1")
            assert pete.goto(f"{url}/units/data-insight").status == 403

            # The provider's answer replayed in another browser (no sign-in cookie there) starts nothing.
            stranger = browser.new_context().new_page()
            replay = stranger.goto(f"{url}/auth/callback?code=stolen&state=guessed")
            assert replay.status == 401 and "sign in again" in stranger.inner_text("main")
            assert not [c for c in stranger.context.cookies() if c["name"] == "pool_portal_session"]

            ann.goto(f"{url}/")
            ann.click("text=Sign out")
            assert "signed out" in ann.inner_text("main")
            assert not [c for c in ann.context.cookies() if c["name"] == "pool_portal_session"]
            again = ann.context.request.get(f"{url}/units/data-insight", max_redirects=0)
            assert again.status == 303 and again.headers["location"] == "/auth/login?next=%2Funits%2Fdata-insight"
        finally:
            browser.close()


def token(claims: dict) -> str:
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part(claims)}.signature"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"iss": "https://evil.example"}, "another issuer"),
        ({"aud": "another-client"}, "not meant for this portal"),
        ({"aud": ["pool-portal", "other"], "azp": "other"}, "another party"),
        ({"exp": 1}, "expired"),
        ({"nonce": "replayed"}, "does not belong to this sign-in"),
        ({"groups": "data-insight-admins"}, "not a list of group names"),
    ],
)
def test_id_token_checks(change: dict, message: str) -> None:
    settings = OidcSettings("https://sso.example", "pool-portal", CLIENT_SECRET, "https://portal.example/cb")
    client = OidcClient(settings)
    good = {"iss": settings.issuer, "aud": "pool-portal", "exp": time.time() + 60, "nonce": "n1", "sub": "ann"}
    good["groups"] = ["data-insight-admins"]
    assert client.person(client.claims(token(good), "n1")) == ("ann", frozenset({"data-insight-admins"}))
    with pytest.raises(SignInError, match=message):
        client.person(client.claims(token({**good, **change}), "n1"))


def test_unsafe_oidc_settings_are_refused() -> None:
    from portal.errors import PortalError

    plain = OidcSettings("http://sso.example", "pool-portal", CLIENT_SECRET, "https://portal.example/cb")
    with pytest.raises(PortalError, match="must be an https:// URL"):
        login_settings(
            dev_user=None, dev_groups=None, trusted_proxies=[], user_header="u", groups_header="g", oidc=plain
        )
    both = dataclasses.replace(plain, issuer="https://sso.example")
    with pytest.raises(PortalError, match="exclude each other"):
        login_settings(
            dev_user="ann", dev_groups="g", trusted_proxies=[], user_header="u", groups_header="g", oidc=both
        )
