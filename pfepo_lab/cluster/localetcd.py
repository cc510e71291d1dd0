"""A throw-away etcd (Debian ``etcd-server``) for tests, benchmarks and the demo.

Own temp data dir, free loopback ports for the client and the peer URL, started with ``--initial-cluster``
naming only itself, stopped by its PID (never a system etcd). Same lifecycle as the influxd helper.
"""

from __future__ import annotations

import shutil

from pfepo_lab.bench.history import _LocalServer, free_port


class LocalEtcd(_LocalServer):
    exe = "etcd"
    ready_path = "/health"

    def __init__(self, base: str | None = None):
        super().__init__(base)
        self.peer_port = free_port()

    @property
    def endpoint(self) -> str:
        return self.url

    def argv(self) -> list[str]:
        peer = f"http://127.0.0.1:{self.peer_port}"
        return [
            shutil.which(self.exe) or self.exe,
            "--name", "pfepo-test",
            "--data-dir", str(self.base / "data"),
            "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"pfepo-test={peer}", "--initial-cluster-state", "new",
            "--log-level", "warn", "--logger", "zap",
        ]
