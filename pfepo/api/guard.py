"""ASGI guard in front of every route: Host allow-list, bearer-token roles, body size cap.

It runs before FastAPI reads anything, so an unauthenticated or oversized body is refused without being
read (FastAPI reads a body before it resolves route dependencies). The principal it finds is left in
``scope["state"]["principal"]`` for the handlers (``request.state.principal``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable

from pfepo.api.auth import ANONYMOUS, TokenTable

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Scope = dict
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


def host_of(header: str) -> str:
    """``example.org:8080`` -> ``example.org``; ``[::1]:8080`` -> ``[::1]``; lower case."""
    h = header.strip().lower()
    if h.startswith("["):
        end = h.find("]")
        return h[: end + 1] if end > 0 else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


class Guard:
    def __init__(self, app, tokens: TokenTable, *, allowed_hosts: Iterable[str], open_reads: bool,
                 max_body_bytes: int, self_authenticated: Iterable[tuple[str, str]] = (),
                 on_refuse: Callable[[str], None] | None = None):
        self.app = app
        self.tokens = tokens
        allowed = {h.strip().lower() for h in allowed_hosts}
        self.any_host = "*" in allowed
        self.allowed_hosts = frozenset(LOOPBACK_NAMES | {host_of(h) for h in allowed if h != "*"})
        self.open_reads = open_reads
        self.max_body_bytes = max_body_bytes
        self.self_authenticated = frozenset(self_authenticated)  # (method, path) with their own token check
        self.on_refuse = on_refuse or (lambda reason: None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {}
        for k, v in scope.get("headers", ()):
            headers.setdefault(k.decode("latin-1").lower(), v.decode("latin-1"))
        if not self.any_host and host_of(headers.get("host", "")) not in self.allowed_hosts:
            await self._refuse(send, 400, "Host header not allowed (rest.allowed_hosts)", "bad_host")
            return
        method, path = scope["method"], scope.get("path", "")
        if (method, path) in self.self_authenticated:
            await self.app(scope, receive, send)  # the route checks its own token and caps its own body
            return
        principal = self.tokens.lookup(headers.get("authorization"))
        reading = method in READ_METHODS
        if principal is None and not (reading and self.open_reads):
            await self._refuse(send, 401, "missing or unknown bearer token", "unauthorized",
                               [(b"www-authenticate", b"Bearer")])
            return
        principal = principal or ANONYMOUS
        if not reading and not principal.can("operate"):
            await self._refuse(send, 403, f"role {principal.role!r} may not change state (needs operate)",
                               "forbidden")
            return
        scope.setdefault("state", {})["principal"] = principal
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or len(declared) > 12
                                     or int(declared) > self.max_body_bytes):
            await self._refuse(send, 413, f"body over {self.max_body_bytes} bytes (rest.max_body_bytes)",
                               "too_large")
            return
        if reading:
            await self.app(scope, receive, send)
            return
        body = bytearray()
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            body += msg.get("body", b"")
            if len(body) > self.max_body_bytes:
                await self._refuse(send, 413, f"body over {self.max_body_bytes} bytes (rest.max_body_bytes)",
                                   "too_large")
                return
            if not msg.get("more_body"):
                break
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send, status: int, detail: str, kind: str,
                      extra: list[tuple[bytes, bytes]] | None = None) -> None:
        self.on_refuse(kind)
        payload = json.dumps({"detail": detail}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(payload)).encode()),
                                (b"connection", b"close"),  # never read (and discard) a refused body
                                *(extra or [])]})
        await send({"type": "http.response.body", "body": payload})
