"""``Impairer``: add latency, loss, a bandwidth cap, or take a link down, at runtime, without netem.

Which mechanism does what (this kernel has no ``sch_netem``):
- delay/jitter on a link: the userspace relay on the link node (:mod:`pfepo_lab.impair.relay`), via its
  control socket;
- loss on a link: the relay (frames it forwards never pass netfilter); loss on a host interface:
  iptables ``statistic --mode random`` in a chain of our own, so it is idempotent and removable;
- bandwidth: ``tc qdisc replace ... tbf`` on the egress interface(s);
- down/up: ``ip link set IF down|up`` on the link node's (or host's) interface, so the veth peer in the
  switch reports NO-CARRIER and the switch sees a port-down.
Gray failures (the link stays up, so OVS liveness never fires):
- blackhole: the relay drops every frame both ways (loss 100 %), carrier untouched;
- server hang / brown-out: the server's HTTP service reads its control file (``http_control``) and
  stops answering, or answers a share of requests with 503;
- server crash: iptables in the server's namespace rejects its service ports with TCP resets (new
  connections refused, live ones reset), as a dead process would.

Commands run inside a node's namespace through a *runner*: :class:`NetnsRunner` (``ip netns exec``),
:class:`PidRunner` (``nsenter -t PID -n``) or :class:`CmdRunner` around Mininet's ``node.cmd``.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pfepo_lab.impair.control import ControlError, RelayClient
from pfepo_lab.impair.state import HostNode, ImpairState, LinkNode, NodeRef


class ImpairError(RuntimeError):
    """An impairment could not be applied (unknown target, command failed, relay unreachable)."""


# -- runners -------------------------------------------------------------------------------------------


class Runner:
    """Runs argv inside one network namespace and returns (exit code, combined output)."""

    def run(self, argv: Sequence[str]) -> tuple[int, str]:
        raise NotImplementedError

    def __call__(self, argv: Sequence[str], check: bool = True) -> str:
        rc, out = self.run(argv)
        if check and rc != 0:
            raise ImpairError(f"{shlex.join(argv)} failed in {self} (exit {rc}): {out.strip()}")
        return out


class SubprocessRunner(Runner):
    prefix: list[str] = []

    def run(self, argv: Sequence[str]) -> tuple[int, str]:
        try:
            r = subprocess.run([*self.prefix, *argv], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return 127, str(exc)
        return r.returncode, r.stdout + r.stderr


class LocalRunner(SubprocessRunner):
    def __repr__(self) -> str:
        return "LocalRunner()"


class NetnsRunner(SubprocessRunner):
    """A named namespace under /run/netns (``ip netns add``)."""

    def __init__(self, name: str):
        self.name = name
        self.prefix = ["ip", "netns", "exec", name]

    def __repr__(self) -> str:
        return f"NetnsRunner({self.name!r})"


class PidRunner(SubprocessRunner):
    """The network namespace of process ``pid`` (e.g. a Mininet host's shell)."""

    def __init__(self, pid: int):
        self.pid = int(pid)
        self.prefix = ["nsenter", "-t", str(self.pid), "-n", "--"]

    def __repr__(self) -> str:
        return f"PidRunner({self.pid})"


class CmdRunner(Runner):
    """Adapts a ``str -> output`` shell function such as Mininet's ``node.cmd``; the exit code is
    recovered from a marker echoed after the command."""

    _MARK = "__pfepo_rc="

    def __init__(self, cmd: Callable[[str], str]):
        self.cmd = cmd

    def run(self, argv: Sequence[str]) -> tuple[int, str]:
        out = self.cmd(f"{shlex.join(argv)} 2>&1; echo {self._MARK}$?")
        m = re.search(rf"{self._MARK}(\d+)", out)
        if not m:
            return 1, out
        return int(m.group(1)), out[: m.start()]

    def __repr__(self) -> str:
        return f"CmdRunner({self.cmd!r})"


def as_runner(obj: Runner | Callable[[str], str]) -> Runner:
    """Our runners pass through; any other callable is taken to be a ``node.cmd``-like function."""
    if isinstance(obj, Runner):
        return obj
    if callable(obj):
        return CmdRunner(obj)
    raise TypeError(f"not a runner: {obj!r}")


def runner_for(node: NodeRef) -> Runner:
    return PidRunner(node.pid) if node.pid is not None else NetnsRunner(node.netns or "")


# -- primitives (usable without an Impairer) -----------------------------------------------------------


def tbf(run: Runner, intf: str, mbit: float) -> None:
    """Cap egress of ``intf`` at ``mbit`` with a token bucket; replaces any root qdisc we put there."""
    if mbit <= 0:
        raise ImpairError("rate must be > 0 Mbit/s (use clear to remove a cap)")
    rate_bytes = mbit * 1e6 / 8
    burst = int(max(16 * 1024, rate_bytes * 0.004))  # >= a few MTUs, ~4 ms at high rates
    run(["tc", "qdisc", "replace", "dev", intf, "root", "tbf", "rate", f"{mbit:g}mbit",
         "burst", str(burst), "latency", "50ms"])


def tbf_clear(run: Runner, intf: str) -> None:
    rc, out = run.run(["tc", "qdisc", "del", "dev", intf, "root"])
    if rc != 0 and not re.search(r"No such file|Cannot delete qdisc with handle of zero|not found", out):
        raise ImpairError(f"tc qdisc del dev {intf} root: {out.strip()}")


def _loss_chain(intf: str, direction: str) -> str:
    return f"PFL-{direction}-{intf}"  # <= 4+3+1+15 = 23 chars, within iptables' 28


def iptables_loss(run: Runner, intf: str, pct: float, direction: str = "out") -> None:
    """Drop ``pct`` % of IPv4 packets leaving (``out``) or arriving at (``in``) ``intf``. Replaces
    the previous rule for that interface and direction; ``pct == 0`` removes it."""
    if direction not in ("in", "out"):
        raise ImpairError(f"iptables loss direction must be in or out, not {direction!r}")
    if not 0 <= pct <= 100:
        raise ImpairError("loss must be within 0..100 %")
    if pct == 0:
        iptables_loss_clear(run, intf, direction)
        return
    chain = _loss_chain(intf, direction)
    base, flag = ("OUTPUT", "-o") if direction == "out" else ("INPUT", "-i")
    rc, out = run.run(["iptables", "-w", "-N", chain])
    if rc != 0 and "exists" not in out:
        raise ImpairError(f"iptables -N {chain}: {out.strip()}")
    run(["iptables", "-w", "-F", chain])
    run(["iptables", "-w", "-A", chain, "-m", "statistic", "--mode", "random",
         "--probability", f"{pct / 100:.6f}", "-j", "DROP"])
    jump = [base, flag, intf, "-j", chain]
    if run.run(["iptables", "-w", "-C", *jump])[0] != 0:
        run(["iptables", "-w", "-I", *jump[:1], "1", *jump[1:]])


def iptables_loss_clear(run: Runner, intf: str, direction: str) -> None:
    chain = _loss_chain(intf, direction)
    base, flag = ("OUTPUT", "-o") if direction == "out" else ("INPUT", "-i")
    for _ in range(16):  # every jump we may have added
        if run.run(["iptables", "-w", "-D", base, flag, intf, "-j", chain])[0] != 0:
            break
    run.run(["iptables", "-w", "-F", chain])
    run.run(["iptables", "-w", "-X", chain])


def set_link(run: Runner, intf: str, up: bool) -> None:
    run(["ip", "link", "set", "dev", intf, "up" if up else "down"])


def link_flags(run: Runner, intf: str) -> set[str]:
    """The flags ``ip link`` shows for ``intf`` (e.g. {'UP', 'LOWER_UP'} or {'NO-CARRIER', ...}).
    Read via ``ip`` rather than /sys, which shows the mount's namespace under ``nsenter -n``."""
    out = run(["ip", "-o", "link", "show", "dev", intf])
    m = re.search(r"<([^>]*)>", out)
    return set(m.group(1).split(",")) if m else set()


def has_carrier(run: Runner, intf: str) -> bool:
    flags = link_flags(run, intf)
    return "LOWER_UP" in flags and "NO-CARRIER" not in flags


# -- the Impairer --------------------------------------------------------------------------------------


@dataclass
class _Link:
    run: Runner
    a: str
    b: str
    relay: RelayClient
    region: str | None = None


@dataclass
class _Host:
    run: Runner
    intfs: list[str] = field(default_factory=list)
    region: str | None = None
    http_control: str | None = None
    service_ports: list[int] = field(default_factory=list)


CRASH_CHAIN = "PFC-crash"


def server_mode(path: str, mode: str | None, error_pct: float = 0.0, drain: bool | None = None) -> None:
    """Write a server control file atomically (the server re-reads it when it changes).

    ``mode`` None keeps the current mode; ``drain`` None keeps the drain flag, except that ``ok`` (back
    to normal) also ends a drain. A drain (``Connection: close`` on every response) is independent of the
    failure mode, so a hook draining a region and a failure injected later do not undo each other.
    """
    import json
    import os

    try:
        with open(path) as f:
            cur = json.load(f)
    except (OSError, ValueError):
        cur = {}
    doc = {"mode": cur.get("mode", "ok"), "error_pct": cur.get("error_pct", 0.0), "drain": bool(cur.get("drain"))}
    if mode is not None:
        doc["mode"], doc["error_pct"] = mode, error_pct
        if mode == "ok" and drain is None:
            doc["drain"] = False
    if drain is not None:
        doc["drain"] = drain
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.replace(tmp, path)


def server_crash(run: Runner, ports: Sequence[int], on: bool) -> None:
    """Reject TCP to ``ports`` with resets (``on``) or remove that rule; idempotent."""
    if on:
        rc, out = run.run(["iptables", "-w", "-N", CRASH_CHAIN])
        if rc != 0 and "exists" not in out:
            raise ImpairError(f"iptables -N {CRASH_CHAIN}: {out.strip()}")
        run(["iptables", "-w", "-F", CRASH_CHAIN])
        sel = ["-m", "multiport", "--dports", ",".join(str(p) for p in ports)] if ports else []
        run(["iptables", "-w", "-A", CRASH_CHAIN, "-p", "tcp", *sel, "-j", "REJECT", "--reject-with", "tcp-reset"])
        if run.run(["iptables", "-w", "-C", "INPUT", "-j", CRASH_CHAIN])[0] != 0:
            run(["iptables", "-w", "-I", "INPUT", "1", "-j", CRASH_CHAIN])
        return
    for _ in range(16):
        if run.run(["iptables", "-w", "-D", "INPUT", "-j", CRASH_CHAIN])[0] != 0:
            break
    run.run(["iptables", "-w", "-F", CRASH_CHAIN])
    run.run(["iptables", "-w", "-X", CRASH_CHAIN])


SERVER_MODES = ("ok", "hang", "crash", "brownout", "drain", "undrain")


LINK_DIRECTIONS = ("both", "a2b", "b2a")
HOST_DIRECTIONS = ("both", "out", "in")


class Impairer:
    """Applies impairments to named targets: a link node, a region (its link nodes), or a host; a
    ``name:intf`` target narrows a host or link to one interface (rate, loss on hosts, down/up)."""

    def __init__(self, state: ImpairState | None = None, runner_factory: Callable[[NodeRef], Runner] = runner_for):
        self.links: dict[str, _Link] = {}
        self.hosts: dict[str, _Host] = {}
        if state:
            for name, ln in state.links.items():
                self._add_link_node(name, ln, runner_factory(ln))
            for name, hn in state.hosts.items():
                self._add_host_node(name, hn, runner_factory(hn))

    def _add_link_node(self, name: str, ln: LinkNode, run: Runner) -> None:
        self.add_link(name, run, ln.a, ln.b, ln.control, ln.region)

    def _add_host_node(self, name: str, hn: HostNode, run: Runner) -> None:
        self.add_host(name, run, hn.intfs, hn.region)
        self.hosts[name].http_control = hn.http_control
        self.hosts[name].service_ports = list(hn.service_ports)

    def add_link(self, name: str, runner, a: str, b: str, control: str, region: str | None = None) -> None:
        self.links[name] = _Link(as_runner(runner), a, b, RelayClient(control), region)

    def add_host(self, name: str, runner, intfs: Sequence[str], region: str | None = None) -> None:
        self.hosts[name] = _Host(as_runner(runner), list(intfs), region)

    # -- target resolution ---------------------------------------------------------------------
    def _split(self, target: str) -> tuple[str, str | None]:
        name, _, intf = target.partition(":")
        return name, intf or None

    def _links(self, target: str) -> list[tuple[str, _Link]]:
        name, intf = self._split(target)
        if intf:
            raise ImpairError(f"{target}: delay and link loss act on the whole link; drop ':{intf}'")
        if name in self.links:
            return [(name, self.links[name])]
        found = [(n, ln) for n, ln in self.links.items() if ln.region == name]
        if found:
            return found
        if name in self.hosts:
            raise ImpairError(f"{name} is a host: delay needs a link node running the relay (no netem here)")
        raise ImpairError(self._unknown(name))

    def _unknown(self, name: str) -> str:
        known = sorted(set(self.links) | set(self.hosts) | {ln.region for ln in self.links.values() if ln.region})
        return f"unknown target {name!r}; known: {', '.join(known) or 'none'}"

    def _interfaces(self, target: str, direction: str = "both") -> list[tuple[Runner, str]]:
        """(runner, egress interface) pairs a target and direction stand for."""
        name, intf = self._split(target)
        if name in self.hosts:
            host = self.hosts[name]
            intfs = [intf] if intf else host.intfs
            if intf and intf not in host.intfs:
                raise ImpairError(f"{name} has no interface {intf} (has {', '.join(host.intfs)})")
            if not intfs:
                raise ImpairError(f"host {name} lists no interfaces in the state file")
            return [(host.run, i) for i in intfs]
        links = [(name, self.links[name])] if name in self.links else [
            (n, ln) for n, ln in self.links.items() if ln.region == name
        ]
        if not links:
            raise ImpairError(self._unknown(name))
        out = []
        for lname, ln in links:
            if intf:
                if intf not in (ln.a, ln.b):
                    raise ImpairError(f"link {lname} has no interface {intf} (has {ln.a}, {ln.b})")
                out.append((ln.run, intf))
                continue
            _check(direction, LINK_DIRECTIONS, f"link {lname}")
            if direction in ("both", "a2b"):
                out.append((ln.run, ln.b))  # a->b traffic leaves through b
            if direction in ("both", "b2a"):
                out.append((ln.run, ln.a))
        return out

    # -- knobs ---------------------------------------------------------------------------------
    def set_delay(self, target: str, ms: float, jitter_ms: float = 0.0, direction: str = "both") -> None:
        """One-way delay ``ms`` added in each selected direction (both: the RTT grows by 2*ms)."""
        _check(direction, LINK_DIRECTIONS, target)
        if ms < 0 or jitter_ms < 0:
            raise ImpairError("delay and jitter must be >= 0 ms")
        for _, ln in self._links(target):
            self._relay(ln, "set", direction, delay_ms=ms, jitter_ms=jitter_ms)

    def set_loss(self, target: str, pct: float, direction: str = "both") -> None:
        """Random loss ``pct`` % per direction: in the relay for links/regions, iptables for hosts."""
        if not 0 <= pct <= 100:
            raise ImpairError("loss must be within 0..100 %")
        name, intf = self._split(target)
        if name in self.hosts:
            _check(direction, HOST_DIRECTIONS, target)
            for run, i in self._interfaces(target):
                for d in ("out", "in"):
                    if direction in ("both", d):
                        iptables_loss(run, i, pct, d)
            return
        _check(direction, LINK_DIRECTIONS, target)
        for _, ln in self._links(target):
            self._relay(ln, "set", direction, loss_pct=pct)

    def set_bandwidth(self, target: str, mbit: float, direction: str = "both") -> None:
        """Cap egress rate with tc tbf; on a link, ``a2b`` caps traffic toward the region side."""
        for run, intf in self._interfaces(target, direction):
            tbf(run, intf, mbit)

    set_rate = set_bandwidth

    def clear_bandwidth(self, target: str) -> None:
        for run, intf in self._interfaces(target):
            tbf_clear(run, intf)

    def link_down(self, target: str) -> None:
        for run, intf in self._interfaces(target):
            set_link(run, intf, up=False)

    def link_up(self, target: str) -> None:
        for run, intf in self._interfaces(target):
            set_link(run, intf, up=True)

    # -- gray failures ------------------------------------------------------------------------
    def blackhole(self, target: str) -> None:
        """Every frame on the link(s) dropped both ways while the carrier stays up (a gray failure)."""
        for _, ln in self._links(target):
            self._relay(ln, "set", "both", loss_pct=100.0)

    def _servers(self, target: str) -> list[tuple[str, _Host]]:
        name, intf = self._split(target)
        if intf:
            raise ImpairError(f"{target}: a server failure acts on the whole host; drop ':{intf}'")
        if name in self.hosts:
            found = [(name, self.hosts[name])]
        else:
            found = [(n, h) for n, h in self.hosts.items() if h.region == name and (h.http_control or h.service_ports)]
            if not found and name not in self.links and not any(ln.region == name for ln in self.links.values()):
                raise ImpairError(self._unknown(name))
        if not found:
            raise ImpairError(f"{target}: no server host (with http_control/service_ports) to act on")
        return found

    def server(self, target: str, mode: str, error_pct: float = 0.0) -> None:
        """Put a server (or every server of a region) in ``mode``: ok, hang, crash or brownout; or
        ``drain`` / ``undrain`` it (``Connection: close`` on every response, beside any mode: what a drain
        hook asks of an application)."""
        if mode not in SERVER_MODES:
            raise ImpairError(f"server mode must be one of {', '.join(SERVER_MODES)}, not {mode!r}")
        if mode == "brownout" and not 0 < error_pct <= 100:
            raise ImpairError("brown-out error share must be within (0, 100] %")
        for name, host in self._servers(target):
            if mode in ("drain", "undrain"):
                if not host.http_control:
                    raise ImpairError(f"host {name} has no http_control file in the state: cannot {mode}")
                server_mode(host.http_control, None, drain=mode == "drain")
                continue
            if mode in ("hang", "brownout", "ok"):
                if not host.http_control:
                    if mode == "ok":
                        continue
                    raise ImpairError(f"host {name} has no http_control file in the state: cannot {mode}")
                server_mode(host.http_control, mode, error_pct)
            if mode == "crash":
                server_crash(host.run, host.service_ports, True)
            elif mode == "ok":
                server_crash(host.run, host.service_ports, False)

    def clear(self, target: str) -> None:
        """Back to a clean wire: no delay/loss/rate, no tbf, no loss rules, interfaces up."""
        name, intf = self._split(target)
        errors: list[str] = []  # best effort: one broken piece (e.g. a dead relay) must not block the rest

        def attempt(fn, *args) -> None:
            try:
                fn(*args)
            except ImpairError as exc:
                errors.append(str(exc))

        if name in self.hosts:
            for run, i in self._interfaces(target):
                for d in ("out", "in"):
                    attempt(iptables_loss_clear, run, i, d)
            host = self.hosts[name]
            if host.http_control or host.service_ports:
                attempt(self.server, name, "ok")
        else:
            for _, ln in self._links(name):
                attempt(self._relay, ln, "clear")
        for run, i in self._interfaces(target):
            attempt(tbf_clear, run, i)
            attempt(set_link, run, i, True)
        if errors:
            raise ImpairError("; ".join(errors))

    def show(self, target: str) -> dict:
        """Current impairment of a target: relay settings and counters, qdiscs, link flags."""
        name, _ = self._split(target)
        result: dict = {}
        if name not in self.hosts:
            result["relays"] = {n: self._relay(ln, "get") for n, ln in self._links(name)}
        result["interfaces"] = {
            intf: {
                "flags": sorted(link_flags(run, intf)),
                "qdisc": run(["tc", "qdisc", "show", "dev", intf]).strip(),
            }
            for run, intf in self._interfaces(target)
        }
        if name in self.hosts:
            result["iptables"] = [
                line for line in self.hosts[name].run(["iptables", "-w", "-S"]).splitlines() if "PFL-" in line
            ]
        return result

    @staticmethod
    def _relay(ln: _Link, op: str, direction: str = "both", **fields: float) -> dict:
        try:
            if op == "get":
                return ln.relay.get()
            if op == "clear":
                return ln.relay.clear()
            return ln.relay.set(direction, **fields)
        except ControlError as exc:
            raise ImpairError(str(exc)) from exc


def _check(direction: str, allowed: Sequence[str], what: str) -> None:
    if direction not in allowed:
        raise ImpairError(f"{what}: direction must be one of {', '.join(allowed)}, not {direction!r}")
