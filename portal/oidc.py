"""OpenID Connect sign-in: the authorization code flow with PKCE (S256), a state and a nonce per attempt.

The ID token comes straight from the provider's token endpoint, authenticated with the client secret, so its
signature check may be replaced by the transport's (OpenID Connect Core 1.0, 3.1.3.7, rule 6); the issuer must
therefore be https (plain http only on loopback, for tests). Issuer, audience, authorized party, expiry and
nonce are checked; the person's name and groups are read from the claims named in the settings.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from .errors import PortalError


@dataclass(frozen=True)
class OidcSettings:
    issuer: str
    client_id: str
    client_secret: str
    redirect_uri: str
    username_claim: str = "preferred_username"
    groups_claim: str = "groups"
    scopes: str = "openid profile groups"


class SignInError(Exception):
    """A sign-in that did not complete; the message is shown to the person (no secret in it)."""


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_settings(settings: OidcSettings) -> OidcSettings:
    """Refuse settings that would make the sign-in unsafe, naming the flag."""
    for flag, url in (("--oidc-issuer", settings.issuer), ("--oidc-redirect-uri", settings.redirect_uri)):
        scheme = urlsplit(url).scheme
        if scheme not in ("https", "http") or (scheme == "http" and not _loopback(url)):
            raise PortalError(f"{flag} {url!r}: must be an https:// URL (plain http only on 127.0.0.1 or localhost)")
    if not settings.client_id.strip():
        raise PortalError("--oidc-client-id is empty: give the client id registered at the provider")
    if len(settings.client_secret) < 8:
        raise PortalError("--oidc-client-secret-file holds no usable secret: write the client secret into it")
    return settings


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def pkce_pair() -> tuple[str, str]:
    """A code verifier and its S256 challenge (RFC 7636)."""
    verifier = _b64url(secrets.token_bytes(32))
    return verifier, _b64url(hashlib.sha256(verifier.encode()).digest())


class OidcClient:
    """The portal as a confidential OpenID Connect client of one provider."""

    def __init__(self, settings: OidcSettings) -> None:
        self.settings = settings
        self._metadata: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def metadata(self) -> dict[str, Any]:
        """The provider's discovery document, fetched once."""
        with self._lock:
            if self._metadata is None:
                url = self.settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
                try:
                    response = httpx.get(url, timeout=10)
                    response.raise_for_status()
                    document = response.json()
                except (httpx.HTTPError, ValueError) as e:
                    raise SignInError(f"the sign-in provider did not answer at {url}: try again later") from e
                if document.get("issuer") != self.settings.issuer:
                    raise SignInError("the sign-in provider's discovery document names another issuer")
                self._metadata = document
            return self._metadata

    def authorization_url(self, state: str, nonce: str, challenge: str) -> str:
        query = {
            "response_type": "code",
            "client_id": self.settings.client_id,
            "redirect_uri": self.settings.redirect_uri,
            "scope": self.settings.scopes,
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        return f"{self.metadata()['authorization_endpoint']}?{urlencode(query)}"

    def sign_in(self, code: str, verifier: str, nonce: str) -> tuple[str, frozenset[str]]:
        """Exchange the code (with the PKCE verifier) and read the person from the checked ID token."""
        try:
            response = httpx.post(
                self.metadata()["token_endpoint"],
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": self.settings.redirect_uri,
                    "code_verifier": verifier,
                },
                auth=(self.settings.client_id, self.settings.client_secret),
                timeout=10,
            )
        except httpx.HTTPError as e:
            raise SignInError("the sign-in provider did not answer: try again") from e
        if response.status_code != 200:
            raise SignInError("the sign-in provider refused the sign-in code: sign in again")
        token = response.json().get("id_token")
        if not isinstance(token, str):
            raise SignInError("the sign-in provider sent no ID token: check that the scope includes openid")
        return self.person(self.claims(token, nonce))

    def claims(self, token: str, nonce: str, now: float | None = None) -> dict[str, Any]:
        """The ID token's claims after the checks of OpenID Connect Core 3.1.3.7 (signature: see the module)."""
        try:
            payload = token.split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (IndexError, ValueError) as e:
            raise SignInError("the ID token cannot be read") from e
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        moment = now or time.time()
        if claims.get("iss") != self.settings.issuer:
            raise SignInError("the ID token comes from another issuer")
        if self.settings.client_id not in audiences:
            raise SignInError("the ID token is not meant for this portal")
        if len(audiences) > 1 and claims.get("azp") != self.settings.client_id:
            raise SignInError("the ID token was issued to another party")
        if not isinstance(claims.get("exp"), int | float) or claims["exp"] <= moment:
            raise SignInError("the ID token has expired: sign in again")
        if not isinstance(nonce, str) or claims.get("nonce") != nonce:
            raise SignInError("the ID token does not belong to this sign-in: sign in again")
        return claims

    def person(self, claims: dict[str, Any]) -> tuple[str, frozenset[str]]:
        """The person's name and groups from the claims the settings name."""
        name = claims.get(self.settings.username_claim) or claims.get("sub")
        groups = claims.get(self.settings.groups_claim, [])
        if not isinstance(name, str) or not name:
            raise SignInError(f"the ID token has no {self.settings.username_claim} or sub claim")
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise SignInError(f"the ID token's {self.settings.groups_claim} claim is not a list of group names")
        return name, frozenset(groups)
