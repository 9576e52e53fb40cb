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


class SessionSigner:
    """Issues and checks session cookies and the CSRF token that belongs to each session."""

    def __init__(self, key: bytes, lifetime_seconds: int) -> None:
        self.key = key
        self.lifetime = lifetime_seconds

    def _mac(self, purpose: str, data: bytes) -> str:
        return hmac.new(self.key, purpose.encode() + b"\0" + data, hashlib.sha256).hexdigest()

    def issue(self, user: str, now: float | None = None) -> tuple[Session, str]:
        """A new session for `user` and its cookie value."""
        session = Session(secrets.token_urlsafe(16), user, int((now or time.time()) + self.lifetime))
        body = base64.urlsafe_b64encode(json.dumps([session.sid, session.user, session.expires]).encode())
        return session, f"{body.decode()}.{self._mac('session', body)}"

    def read(self, value: str | None, user: str, now: float | None = None) -> Session | None:
        """The session in a cookie when its signature holds, it has not expired and it is `user`'s; else None."""
        if not value or "." not in value:
            return None
        body, _, mac = value.rpartition(".")
        if not hmac.compare_digest(mac, self._mac("session", body.encode())):
            return None
        try:
            sid, owner, expires = json.loads(base64.urlsafe_b64decode(body.encode()))
        except (ValueError, TypeError):
            return None
        if owner != user or not isinstance(expires, int) or expires <= (now or time.time()):
            return None
        return Session(str(sid), owner, expires)

    def csrf_token(self, session: Session) -> str:
        return self._mac("csrf", session.sid.encode())

    def csrf_ok(self, session: Session | None, token: str | None) -> bool:
        return session is not None and bool(token) and hmac.compare_digest(self.csrf_token(session), str(token))
