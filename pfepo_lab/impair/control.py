"""Runtime control of a relay: one JSON object per line over a UNIX stream socket, one reply per request.

A filesystem UNIX socket is reachable from every network namespace (only the mount namespace matters),
so the controller in the root namespace can steer a relay running inside a Mininet host. Requests:
``{"op": "get"}``, ``{"op": "clear"}``, ``{"op": "set", "dir": "both|a2b|b2a", "delay_ms": 20, ...}``.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("pfepo_lab.impair.control")

MAX_REQUEST = 64 * 1024


class ControlError(RuntimeError):
    """The relay could not be reached or refused a request."""


class ControlServer:
    """Accepts connections on ``path`` and answers each JSON line with ``handler(request)``."""

    def __init__(self, path: str, handler: Callable[[dict], dict]):
        self.path = path
        self.handler = handler
        if os.path.exists(path):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(path)
            except OSError:
                os.unlink(path)  # stale socket from a relay that is gone
            else:
                raise OSError(errno.EADDRINUSE, f"another relay is listening on {path}")
            finally:
                probe.close()
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(16)
        self._closed = False

    def start(self) -> None:
        threading.Thread(target=self._serve, name="relay-control", daemon=True).start()

    def _serve(self) -> None:
        while not self._closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _client(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rwb") as f:
            conn.settimeout(30)
            try:
                for line in f:
                    if len(line) > MAX_REQUEST:
                        reply: dict[str, Any] = {"ok": False, "error": "request too long"}
                    else:
                        try:
                            req = json.loads(line)
                            if not isinstance(req, dict):
                                raise ValueError("request must be a JSON object")
                            reply = self.handler(req)
                        except ValueError as exc:
                            reply = {"ok": False, "error": f"bad request: {exc}"}
                    f.write(json.dumps(reply).encode() + b"\n")
                    f.flush()
            except OSError:
                return

    def close(self) -> None:
        self._closed = True
        try:
            self.sock.close()
        finally:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


class RelayClient:
    """Talks to the relay behind ``path``; every call opens a short connection (robust to restarts)."""

    def __init__(self, path: str, timeout: float = 3.0):
        self.path = path
        self.timeout = timeout

    def request(self, req: dict) -> dict:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(self.timeout)
                s.connect(self.path)
                s.sendall(json.dumps(req).encode() + b"\n")
                buf = b""
                while not buf.endswith(b"\n"):
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
        except OSError as exc:
            raise ControlError(f"relay control socket {self.path}: {exc.strerror or exc}") from exc
        try:
            reply = json.loads(buf)
        except ValueError as exc:
            raise ControlError(f"relay at {self.path} sent an unreadable reply: {buf[:200]!r}") from exc
        if not reply.get("ok"):
            raise ControlError(f"relay at {self.path} refused {req}: {reply.get('error')}")
        return reply

    def wait_ready(self, timeout: float = 10.0, proc=None) -> dict:
        """Poll until the relay answers (it binds the socket once its packet sockets are open).
        ``proc`` (a Popen) makes an early exit fail fast instead of waiting out the timeout."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.get()
            except ControlError:
                if proc is not None and proc.poll() is not None:
                    raise ControlError(f"relay exited with code {proc.returncode} before answering") from None
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def get(self) -> dict:
        return self.request({"op": "get"})

    def set(self, direction: str = "both", **fields: float) -> dict:
        return self.request({"op": "set", "dir": direction, **fields})

    def clear(self) -> dict:
        return self.request({"op": "clear"})
