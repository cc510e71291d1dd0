"""A throw-away namespace lab for testing and benchmarking the impairment tools.

Topology (names carry a random prefix so parallel runs never collide)::

    <p>L [<p>l 10.201.0.1] --veth-- [<p>a] <p>M relay [<p>b] --veth-- [<p>r 10.201.0.2] <p>R
    <p>DL [<p>x 10.202.0.1] --veth-- [<p>y 10.202.0.2] <p>DR          (optional direct pair)

Everything it creates (namespaces, hence their veths; processes, by PID; a temp dir) is removed by
:meth:`RelayLab.close`, also after a failure half-way through :meth:`RelayLab.start`.
"""

from __future__ import annotations

import glob
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

from pfepo_lab.impair.control import ControlError, RelayClient
from pfepo_lab.impair.impair import Impairer, NetnsRunner
from pfepo_lab.impair.relay import relay_argv
from pfepo_lab.impair.state import HostNode, ImpairState, LinkNode

LEFT_IP, RIGHT_IP = "10.201.0.1", "10.201.0.2"
DIRECT_LEFT_IP, DIRECT_RIGHT_IP = "10.202.0.1", "10.202.0.2"


class LabError(RuntimeError):
    pass


def _ip(*argv: str) -> None:
    r = subprocess.run(["ip", *argv], capture_output=True, text=True)
    if r.returncode != 0:
        raise LabError(f"ip {' '.join(argv)}: {r.stderr.strip()}")


def can_run() -> str | None:
    """None if this process can build the lab, else why not (for pytest skips)."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, AF_PACKET)"
    for tool in ("ip", "tc", "iptables", "ethtool", "iperf3"):
        if not shutil.which(tool):
            return f"{tool} not installed"
    return None


class RelayLab:
    def __init__(self, direct: bool = False, endpoint_offloads: bool = True, prefix: str | None = None):
        self.p = prefix or f"pfi{secrets.token_hex(3)}"
        self.left, self.mid, self.right = f"{self.p}L", f"{self.p}M", f"{self.p}R"
        self.if_left, self.if_a, self.if_b, self.if_right = f"{self.p}l", f"{self.p}a", f"{self.p}b", f"{self.p}r"
        self.direct = direct
        self.endpoint_offloads = endpoint_offloads
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen] = []
        self.tmp = tempfile.mkdtemp(prefix=f"{self.p}-")
        self.control = os.path.join(self.tmp, "relay.ctl")
        self.relay_proc: subprocess.Popen | None = None
        self.relay_log = os.path.join(self.tmp, "relay.log")
        self.http_control: str | None = None  # set by http_server(): the right side then serves HTTP
        self.http_ports: list[int] = []

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> RelayLab:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _ns(self, name: str) -> None:
        _ip("netns", "add", name)
        self.namespaces.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def _veth(self, n1: str, ns1: str, n2: str, ns2: str) -> None:
        _ip("link", "add", n1, "netns", ns1, "type", "veth", "peer", "name", n2, "netns", ns2)

    def _endpoint(self, ns: str, intf: str, ip: str) -> None:
        _ip("-n", ns, "addr", "add", f"{ip}/24", "dev", intf)
        _ip("-n", ns, "link", "set", intf, "up")
        if not self.endpoint_offloads:  # like Mininet hosts with txo=False, rxo=False
            self.run(ns, ["ethtool", "-K", intf, "tx", "off", "rx", "off"])

    def start(self) -> None:
        for ns in (self.left, self.mid, self.right):
            self._ns(ns)
        self._veth(self.if_left, self.left, self.if_a, self.mid)
        self._veth(self.if_b, self.mid, self.if_right, self.right)
        self._endpoint(self.left, self.if_left, LEFT_IP)
        self._endpoint(self.right, self.if_right, RIGHT_IP)
        if self.direct:
            self._ns(f"{self.p}DL")
            self._ns(f"{self.p}DR")
            self._veth(f"{self.p}x", f"{self.p}DL", f"{self.p}y", f"{self.p}DR")
            self._endpoint(f"{self.p}DL", f"{self.p}x", DIRECT_LEFT_IP)
            self._endpoint(f"{self.p}DR", f"{self.p}y", DIRECT_RIGHT_IP)
        self.start_relay()

    def start_relay(self, extra: Sequence[str] = ()) -> None:
        argv = relay_argv(self.if_a, self.if_b, self.control, *extra)
        with open(self.relay_log, "ab") as log:
            self.relay_proc = self.spawn(self.mid, argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            RelayClient(self.control, timeout=1.0).wait_ready(10, self.relay_proc)
        except ControlError as exc:
            raise LabError(f"relay did not start ({exc}): {open(self.relay_log).read()[-2000:]}") from None

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=3)
        self.procs.clear()
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.namespaces.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- helpers -------------------------------------------------------------------------------
    def spawn(self, ns: str, argv: Sequence[str], **kw) -> subprocess.Popen:
        """A long-running process in ``ns`` (``ip netns exec`` execs, so the PID is the process)."""
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.DEVNULL)
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], **kw)
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc in self.procs:
            self.procs.remove(proc)

    def run(self, ns: str, argv: Sequence[str], timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=timeout)

    def state(self) -> ImpairState:
        return ImpairState(
            links={"lnk": LinkNode(netns=self.mid, a=self.if_a, b=self.if_b, control=self.control,
                                   region="reg", relay_pid=self.relay_proc.pid if self.relay_proc else None)},
            hosts={"left": HostNode(netns=self.left, intfs=[self.if_left]),
                   "right": HostNode(netns=self.right, intfs=[self.if_right], region="reg" if self.http_control else None,
                                     http_control=self.http_control, service_ports=list(self.http_ports))},
        )

    def impairer(self) -> Impairer:
        return Impairer(self.state())

    def runner(self, ns: str) -> NetnsRunner:
        return NetnsRunner(ns)

    # -- measurements --------------------------------------------------------------------------
    def echo_server(self, ns: str | None = None, port: int = 7777) -> subprocess.Popen:
        proc = self.spawn(ns or self.right, [sys.executable, "-m", "pfepo_lab.impair.probe", "serve", "--port", str(port)],
                          stdout=subprocess.PIPE, text=True)
        if proc.stdout is None or proc.stdout.readline().strip() != "ready":
            raise LabError("echo server did not start")
        return proc

    def http_server(self, port: int = 8000) -> subprocess.Popen:
        """The lab's HTTP service (mininet_topologies.httpserver) on the right side, with a control file
        so server gray failures (hang, brown-out) can be played; crash acts on its port."""
        self.http_control = os.path.join(self.tmp, "http.mode")
        self.http_ports = [port]
        repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        proc = self.spawn(self.right, [sys.executable, "-m", "mininet_topologies.httpserver", "--name", "right-1",
                                       "--port", str(port), "--control", self.http_control], cwd=repo)
        self._wait_listening(self.right, port)
        return proc

    def probe(self, count: int = 100, interval: float = 0.005, wait: float = 1.0, src: str | None = None,
              dst: str = RIGHT_IP, port: int = 7777, size: int = 64) -> dict:
        r = self.run(src or self.left, [sys.executable, "-m", "pfepo_lab.impair.probe", "send", dst, "--port", str(port),
                                        "--count", str(count), "--interval", str(interval), "--wait", str(wait),
                                        "--size", str(size)])
        if r.returncode != 0:
            raise LabError(f"probe failed: {r.stderr.strip()}")
        return json.loads(r.stdout)

    def _wait_listening(self, ns: str, port: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.run(ns, ["ss", "-Hltn", f"sport = :{port}"]).stdout.strip():
                return
            time.sleep(0.02)
        logs = "".join(open(p).read()[-300:] for p in glob.glob(os.path.join(self.tmp, "iperf3-server-*.log")))
        raise LabError(f"nothing listens on port {port} in {ns} after {timeout:g} s; server said: {logs}")

    def iperf(self, seconds: float = 2.0, src: str | None = None, dst_ns: str | None = None,
              dst: str = RIGHT_IP, port: int = 5201, udp_mbit: float | None = None, reverse: bool = False) -> float:
        """Receiver-side throughput in Mbit/s of one iperf3 run (server started and ended here)."""
        log_path = os.path.join(self.tmp, f"iperf3-server-{port}.log")
        with open(log_path, "ab") as log:
            server = self.spawn(dst_ns or self.right, ["iperf3", "-s", "-1", "-p", str(port)], stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            argv = ["iperf3", "-c", dst, "-p", str(port), "-t", f"{seconds:g}", "-J"]
            if udp_mbit:
                argv += ["-u", "-b", f"{udp_mbit:g}M", "-l", "1400"]
            if reverse:
                argv.append("-R")
            self._wait_listening(dst_ns or self.right, port)
            for _ in range(20):
                r = self.run(src or self.left, argv, timeout=seconds + 20)
                if "Connection refused" not in r.stdout + r.stderr:
                    break
                time.sleep(0.1)
            if r.returncode != 0:
                raise LabError(f"iperf3 failed: {(r.stdout + r.stderr)[-500:]}")
            end = json.loads(r.stdout).get("end", {})
            summary = end.get("sum_received") or end.get("sum")
            if not summary:
                raise LabError(f"iperf3 gave no summary: {r.stdout[-500:]}")
            return summary["bits_per_second"] / 1e6
        finally:
            self.stop(server)
