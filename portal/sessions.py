"""The session cookie and CSRF tokens: a signed, expiring cookie (HttpOnly, SameSite=Lax) naming the person it
was issued to, and a per-session token every form posts back. The signing key lives in memory (or a file the
operator gives), never in a URL."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

COOKIE = "pool_portal_session"


@dataclass(frozen=True)
class Session:
    sid: str
    user: str
    expires: int
    groups: tuple[str, ...] = ()
    """The groups an OpenID Connect sign-in vouched for (the other login modes give them per request)."""


class SessionSigner:
    """Issues and checks session cookies and the CSRF token that belongs to each session."""

    def __init__(self, key: bytes, lifetime_seconds: int) -> None:
        self.key = key
        self.lifetime = lifetime_seconds

    def _mac(self, purpose: str, data: bytes) -> str:
        return hmac.new(self.key, purpose.encode() + b"\0" + data, hashlib.sha256).hexdigest()

    def seal(self, purpose: str, value: object) -> str:
        """`value` (JSON) signed for `purpose`: readable by the browser, not changeable."""
        body = base64.urlsafe_b64encode(json.dumps(value).encode())
        return f"{body.decode()}.{self._mac(purpose, body)}"

    def unseal(self, purpose: str, sealed: str | None) -> object | None:
        """The value `seal` signed for `purpose`, or None when the signature does not hold."""
        if not sealed or "." not in sealed:
            return None
        body, _, mac = sealed.rpartition(".")
        if not hmac.compare_digest(mac, self._mac(purpose, body.encode())):
            return None
        try:
            return json.loads(base64.urlsafe_b64decode(body.encode()))
        except (ValueError, TypeError):
            return None

    def issue(self, user: str, now: float | None = None, groups: tuple[str, ...] = ()) -> tuple[Session, str]:
        """A new session for `user` (with the groups a sign-in vouched for) and its cookie value."""
        session = Session(secrets.token_urlsafe(16), user, int((now or time.time()) + self.lifetime), tuple(groups))
        return session, self.seal("session", [session.sid, session.user, session.expires, list(session.groups)])

    def read(self, value: str | None, user: str | None, now: float | None = None) -> Session | None:
        """The session in a cookie when its signature holds, it has not expired and it is `user`'s (anyone's
        when `user` is None: the OpenID Connect mode, where the session names the person); else None."""
        found = self.unseal("session", value)
        if not isinstance(found, list) or len(found) != 4:
            return None
        sid, owner, expires, groups = found
        if (user is not None and owner != user) or not isinstance(expires, int) or expires <= (now or time.time()):
            return None
        if not isinstance(owner, str) or not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            return None
        return Session(str(sid), owner, expires, tuple(groups))

    def csrf_token(self, session: Session) -> str:
        return self._mac("csrf", session.sid.encode())

    def csrf_ok(self, session: Session | None, token: str | None) -> bool:
        return session is not None and bool(token) and hmac.compare_digest(self.csrf_token(session), str(token))
