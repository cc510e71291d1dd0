"""A running lab: the multi-region topology plus the PF-EPO daemon as a separate process.

Used by the integration tests, ``pfepo demo`` and benchmarks. Everything it starts it stops by PID,
and every bridge it creates it deletes, also when the caller fails half-way.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from mininet_topologies.multiregion import MultiRegionNet, TopoSpec

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_environment() -> None:
    """Fail early with a clear message when the lab cannot run here."""
    if os.geteuid() != 0:
        raise RuntimeError("the Mininet lab needs root (network namespaces, OVS)")
    r = subprocess.run(["ovs-vsctl", "--timeout=3", "show"], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("Open vSwitch is not running: start it with scripts/ovs-start.sh (make setup does)")


class Lab:
    def __init__(self, workdir: str | Path, spec: TopoSpec | None = None, poll_interval_s: float = 0.5,
                 extra_config: dict | None = None, policy_paths: list[str] | None = None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        # A random prefix keeps bridge names apart from anything else on this OVS.
        self.spec = spec or TopoSpec(prefix="p" + secrets.token_hex(2), weights={"eu": 50, "us": 30, "ap": 20})
        self.of_port = free_port()
        self.rest_port = free_port()
        self.api_token = secrets.token_urlsafe(24)  # the lab's admin REST token (rest.tokens)
        cfg = self.spec.config(of_port=self.of_port, rest_port=self.rest_port,
                               state_dir=str(self.workdir / "state"),
                               history_path=str(self.workdir / "history.sqlite"),
                               poll_interval_s=poll_interval_s, api_token=self.api_token)
        cfg["policy"] = {"paths": [str(p) for p in (policy_paths or [REPO / "policies"])],
                         "interval_s": 0.5, "watch_interval_s": 0.5}
        cfg["predict"] = {"model_path": "shipped"}
        cfg.update(extra_config or {})
        self.config = cfg
        self.config_path = self.workdir / "pfepo.yaml"
        self.config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        self.daemon: subprocess.Popen | None = None
        self.net = MultiRegionNet(self.spec, controller_port=self.of_port, workdir=str(self.workdir / "topo"))
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{self.rest_port}", timeout=5,
                                headers={"Authorization": f"Bearer {self.api_token}"})

    # --- daemon ---------------------------------------------------------------------------------------
    def start_daemon(self) -> None:
        log = open(self.workdir / "daemon.log", "a")  # noqa: SIM115 - handed to the child
        self.daemon = subprocess.Popen(
            [sys.executable, "-m", "pfepo.cli", "run", "--config", str(self.config_path)],
            stdout=log, stderr=subprocess.STDOUT, cwd=str(self.workdir),
        )
        self.wait_api()

    def stop_daemon(self) -> None:
        if self.daemon and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait(timeout=5)
        self.daemon = None

    def restart_daemon(self, clean: bool = True, keep_in: Path | None = None) -> None:
        """Stop the daemon and start it again, with a clean state and history when ``clean`` (the old
        ones are moved into ``keep_in`` when given, else deleted). The network stays up."""
        import shutil

        self.stop_daemon()
        if clean:
            for p in (Path(self.config["state_dir"]), Path(self.config["history"]["path"])):
                if not p.exists():
                    continue
                if keep_in is not None:
                    keep_in.mkdir(parents=True, exist_ok=True)
                    shutil.move(str(p), str(keep_in / ("prev-" + p.name)))
                elif p.is_dir():
                    shutil.rmtree(p)
                else:
                    p.unlink()
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        self.start_daemon()
        self.wait_connected()

    # how long a freshly started daemon may take to answer (a busy shared machine can take longer than 20 s)
    api_timeout_s = 20.0

    def wait_api(self, timeout: float | None = None) -> dict:
        deadline = time.monotonic() + (self.api_timeout_s if timeout is None else timeout)
        while True:
            if self.daemon is not None and self.daemon.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.daemon.returncode}; see {self.workdir}/daemon.log")
            try:
                return self.api.get("/api/v1/health").json()
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def wait_for(self, predicate, timeout: float = 15.0, interval: float = 0.1, what: str = "condition"):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(interval)

    def wait_connected(self, timeout: float = 20.0) -> None:
        n = 1 + len(self.spec.regions)
        self.wait_for(lambda: self.wait_api()["switches_connected"] == n, timeout, what=f"{n} switches connected")
        self.wait_for(lambda: self.service()["in_sync"], timeout, what="groups in sync")

    def service(self, name: str = "web") -> dict:
        return self.api.get(f"/api/v1/services/{name}").json()

    def set_weights(self, weights: dict, name: str = "web", force: bool = False) -> httpx.Response:
        """``force``: past the policies' safety rules (the lab token is an admin's)."""
        body = {"weights": weights, **({"force": True} if force else {})}
        return self.api.put(f"/api/v1/services/{name}/weights", json=body)

    # --- switches -------------------------------------------------------------------------------------
    def dump_groups(self, switch: str | None = None) -> str:
        sw = switch or self.spec.core()
        return subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-groups", sw],
                              capture_output=True, text=True, check=True).stdout

    def switch_weights(self, group_id: int = 1) -> list[int]:
        """Bucket weights of a group on the core switch, read from the switch itself (bucket order)."""
        import re

        for line in self.dump_groups().splitlines():
            if f"group_id={group_id}," in line:
                return [int(w) for w in re.findall(r"weight:(\d+)", line)]
        return []

    # --- whole lab ------------------------------------------------------------------------------------
    def start(self) -> None:
        check_environment()
        try:
            self.start_daemon()
            self.net.start()
            self.wait_connected()
            self.net.wait_http()
        except BaseException:
            self.stop()
            raise

    def measure_split(self, requests: int = 600, concurrency: int = 20, client: str = "c1") -> dict[str, float]:
        """Fraction of new connections answered by each region."""
        r = self.net.run_client(client, ["--url", f"http://{self.spec.vip}/", "--requests", str(requests),
                                         "--concurrency", str(concurrency)])
        total = sum(r["by_server"].values())
        shares = {reg: 0.0 for reg in self.spec.regions}
        for server, n in r["by_server"].items():
            shares[server.rsplit("-", 1)[0]] += n / total if total else 0.0
        shares["_failed"] = r["failed"]
        return shares

    def stop(self) -> None:
        try:
            self.net.stop()
        finally:
            self.stop_daemon()
            self.api.close()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
