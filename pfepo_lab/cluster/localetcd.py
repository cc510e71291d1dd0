"""A throw-away etcd (Debian ``etcd-server``) for tests, benchmarks and the demo.

Own temp data dir, free loopback ports for the client and the peer URL, started with ``--initial-cluster``
naming only itself (or, in a ``LocalEtcdCluster``, its local peers), stopped by its PID (never a system
etcd). Same lifecycle as the influxd helper.
"""

from __future__ import annotations

import shutil
import threading

from pfepo_lab.bench.history import _LocalServer, free_port


class LocalEtcd(_LocalServer):
    exe = "etcd"
    ready_path = "/health"

    def __init__(self, base: str | None = None, name: str = "pfepo-test"):
        super().__init__(base)
        self.peer_port = free_port()
        self.name = name
        self.initial_cluster: str | None = None  # NAME=PEER_URL,...: set by LocalEtcdCluster

    @property
    def endpoint(self) -> str:
        return self.url

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def argv(self) -> list[str]:
        return [
            shutil.which(self.exe) or self.exe,
            "--name", self.name,
            "--data-dir", str(self.base / "data"),
            "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
            "--listen-peer-urls", self.peer_url, "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", self.initial_cluster or f"{self.name}={self.peer_url}",
            "--initial-cluster-state", "new",
            "--log-level", "warn", "--logger", "zap",
        ]


class LocalEtcdCluster:
    """``n`` local etcd members forming one cluster (one Raft group): a member can die and the others keep
    answering, which is what ``cluster.endpoints`` with several URLs is for. Started together (a member is
    healthy only once a quorum is up), each stopped by its PID."""

    def __init__(self, n: int = 3):
        self.members = [LocalEtcd(name=f"pfepo-test-{i}") for i in range(n)]
        peers = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        for m in self.members:
            m.initial_cluster = peers

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    def start(self, timeout: float = 20.0) -> None:
        errors: list[Exception] = []

        def one(m: LocalEtcd) -> None:
            try:
                m.start(timeout)
            except Exception as exc:  # noqa: BLE001 - reported after every member was tried
                errors.append(exc)

        threads = [threading.Thread(target=one, args=(m,)) for m in self.members]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            self.cleanup()
            raise errors[0]

    def cleanup(self) -> None:
        for m in self.members:
            m.cleanup()
