"""Browser sessions for the console: a login form turns a bearer token into an HttpOnly cookie.

The cookie holds a random session id, never the token; the token stays on the server. ``CookieAuth``
(outermost ASGI layer) turns a valid session cookie on a ``/ui`` path into the same
``Authorization: Bearer`` header the REST API takes, so the API's own ``Guard`` still decides every
request (Host allow-list, role, body cap). The cookie is ``SameSite=Strict`` and ``Path=/ui``; it never
authenticates ``/api``, so a cross-site page cannot reach the REST API through it. Every state-changing
console form also carries a per-session CSRF token (checked in the routes).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from http.cookies import SimpleCookie

from pfepo.api.auth import Principal

COOKIE = "pfepo_ui"
PREFIX = "/ui"
PUBLIC = frozenset({"/ui/login"})  # reachable without a session (Host allow-list still applies)
PUBLIC_PREFIXES = ("/ui/static/",)  # CSS/JS only: no data


@dataclass
class Session:
    sid: str
    token: str
    principal: Principal
    csrf: str
    expires: float


class Sessions:
    """In-memory sessions (a restart logs everyone out, which is the safe default)."""

    def __init__(self, ttl_s: float = 12 * 3600, max_sessions: int = 1000):
        self.ttl_s = ttl_s
        self.max_sessions = max_sessions
        self._by_id: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, token: str, principal: Principal, now: float | None = None) -> Session:
        now = time.time() if now is None else now
        s = Session(secrets.token_urlsafe(32), token, principal, secrets.token_urlsafe(24), now + self.ttl_s)
        with self._lock:
            self._by_id = {k: v for k, v in self._by_id.items() if v.expires > now}
            while len(self._by_id) >= self.max_sessions:  # oldest first out; memory stays bounded
                self._by_id.pop(min(self._by_id, key=lambda k: self._by_id[k].expires))
            self._by_id[s.sid] = s
        return s

    def get(self, sid: str | None, now: float | None = None) -> Session | None:
        if not sid:
            return None
        now = time.time() if now is None else now
        with self._lock:
            s = self._by_id.get(sid)
            if s is not None and s.expires <= now:
                del self._by_id[sid]
                return None
            return s

    def drop(self, sid: str | None) -> None:
        with self._lock:
            self._by_id.pop(sid or "", None)


def csrf_ok(session: Session | None, given: str | None) -> bool:
    """True for a bearer-header request (no ambient credential) or a matching per-session token."""
    if session is None:
        return True
    return bool(given) and hmac.compare_digest(given.encode(), session.csrf.encode())


def cookie_header(sid: str, secure: bool, max_age: int) -> str:
    flags = f"; Path={PREFIX}; HttpOnly; SameSite=Strict; Max-Age={max_age}"
    return f"{COOKIE}={sid}{flags}{'; Secure' if secure else ''}"


def _cookie_sid(raw: str | None) -> str | None:
    if not raw:
        return None
    c = SimpleCookie()
    try:
        c.load(raw)
    except Exception:  # noqa: BLE001 - a malformed cookie header is just no session
        return None
    m = c.get(COOKIE)
    return m.value if m is not None else None


class CookieAuth:
    """Outermost ASGI layer: session cookie -> bearer header on /ui paths; browsers without one go to login."""

    def __init__(self, app, sessions: Sessions, open_reads: bool):
        self.app = app
        self.sessions = sessions
        self.open_reads = open_reads

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == PREFIX or path.startswith(PREFIX + "/")):
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers", [])
        have_auth = any(k == b"authorization" for k, _ in headers)
        raw_cookie = next((v.decode("latin-1") for k, v in headers if k == b"cookie"), None)
        session = None if have_auth else self.sessions.get(_cookie_sid(raw_cookie))
        public = path in PUBLIC or path.startswith(PUBLIC_PREFIXES)
        if session is not None:
            headers = [*headers, (b"authorization", f"Bearer {session.token}".encode())]
            scope = {**scope, "headers": headers}
        elif not have_auth and not public and not self.open_reads and scope["method"] in ("GET", "HEAD"):
            await send({"type": "http.response.start", "status": 303,
                        "headers": [(b"location", b"/ui/login"), (b"content-length", b"0"),
                                    (b"cache-control", b"no-store")]})
            await send({"type": "http.response.body", "body": b""})
            return
        scope.setdefault("state", {})
        scope = {**scope, "state": {**scope["state"], "console_session": session}}
        await self.app(scope, receive, send)
