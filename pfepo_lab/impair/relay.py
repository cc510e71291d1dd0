"""A userspace L2 relay ("wire") between two interfaces, with per-direction delay, jitter, loss and rate.

Why it exists: this kernel has no ``sch_netem``, so latency cannot be added with tc. A link node in the
topology runs this relay between its two interfaces; it forwards every frame both ways (a plain wire when
no impairment is set) and can be changed at runtime through a UNIX stream socket (see :mod:`control`).

Design:
- one AF_PACKET socket per interface, bound to it (ETH_P_ALL, promiscuous), with
  ``PACKET_IGNORE_OUTGOING`` so frames we send are never read back (no loops);
- ``PACKET_VNET_HDR`` on both sockets: GSO/TSO-size frames and partial checksums arrive with their
  offload metadata and are sent on with it, and the kernel segments/checksums them in software on the
  egress interface (whose offloads we switch off), so whatever a sender does, the far side gets valid
  MTU-size frames; it also lets a 64 KiB TCP super-frame cross in one syscall;
- one thread per direction: drain the socket, drop with probability ``loss``, queue with a due time
  (``delay`` +- ``jitter``, FIFO so nothing reorders, ``rate`` as a virtual-clock token bucket) and send
  what is due. With no impairment a frame is sent straight from the receive loop.

Run inside the link node's network namespace::

    python -m pfepo_lab.impair.relay --a d-eu-eth0 --b d-eu-eth1 --control /tmp/pfepo/eu.ctl
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import random
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field, replace

from pfepo_lab.impair.control import ControlServer

log = logging.getLogger("pfepo_lab.impair.relay")

SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_VNET_HDR = 15
PACKET_IGNORE_OUTGOING = 23
PACKET_OUTGOING = 4
ETH_P_ALL = 0x0003
VNET_HDR_LEN = 10  # struct virtio_net_hdr
RECV_BUF = 65536 + 512  # a full GSO super-frame plus headers
DRAIN_BATCH = 256  # frames read per wake-up before we look at the send queue again
SOCK_BUF = 8 << 20

DIRECTIONS = ("a2b", "b2a")


@dataclass(frozen=True)
class Impairment:
    """What one direction of the wire does to frames. Zero everywhere is a plain wire."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss_pct: float = 0.0
    rate_mbit: float = 0.0  # 0 = unlimited
    queue_ms: float = 200.0  # rate-limited backlog beyond this many ms is tail-dropped

    def validate(self) -> Impairment:
        for name in ("delay_ms", "jitter_ms", "rate_mbit", "queue_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if not 0 <= self.loss_pct <= 100:
            raise ValueError("loss_pct must be within 0..100")
        if self.delay_ms > 60_000 or self.jitter_ms > 60_000:
            raise ValueError("delay/jitter above 60 s is surely a mistake")
        return self

    @property
    def plain(self) -> bool:
        return self.delay_ms == 0 and self.jitter_ms == 0 and self.rate_mbit == 0


@dataclass
class Counters:
    rx: int = 0
    tx: int = 0
    lost: int = 0  # dropped on purpose (loss_pct)
    overflow: int = 0  # dropped because the queue was full
    tx_errors: int = 0  # send failed (interface down, qdisc full)
    rx_errors: int = 0
    rx_bytes: int = 0
    tx_bytes: int = 0
    queued: int = 0


def open_packet_socket(ifname: str, vnet: bool) -> socket.socket:
    """A raw socket bound to ``ifname`` that sees every frame arriving there and none we send."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    except OSError as exc:  # pragma: no cover - kernels < 4.20
        raise OSError(exc.errno, f"PACKET_IGNORE_OUTGOING unsupported: {exc}") from exc
    if vnet:
        s.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
    for opt, force in ((socket.SO_RCVBUF, 33), (socket.SO_SNDBUF, 32)):  # *BUFFORCE needs CAP_NET_ADMIN
        try:
            s.setsockopt(socket.SOL_SOCKET, force, SOCK_BUF)
        except OSError:
            s.setsockopt(socket.SOL_SOCKET, opt, SOCK_BUF)
    s.bind((ifname, ETH_P_ALL))
    ifindex = socket.if_nametoindex(ifname)
    mreq = struct.pack("iHH8s", ifindex, PACKET_MR_PROMISC, 0, b"")
    s.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
    return s


def prepare_interface(ifname: str) -> list[str]:
    """Bring ``ifname`` up as a pure wire port: offloads off (so nothing we emit carries a partial
    checksum or a super-frame), no IPv6 chatter of its own. Returns warnings (best effort)."""
    warnings: list[str] = []
    for feature in ("tx", "rx", "tso", "gso", "gro", "lro", "ufo"):
        r = subprocess.run(["ethtool", "-K", ifname, feature, "off"], capture_output=True, text=True)
        if r.returncode != 0 and feature in ("tx", "tso", "gso", "gro"):
            warnings.append(f"ethtool -K {ifname} {feature} off: {r.stderr.strip() or r.stdout.strip()}")
    try:
        with open(f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6", "w") as f:
            f.write("1")
    except OSError:
        pass
    r = subprocess.run(["ip", "link", "set", ifname, "up"], capture_output=True, text=True)
    if r.returncode != 0:
        warnings.append(f"ip link set {ifname} up: {r.stderr.strip()}")
    return warnings


@dataclass
class Direction:
    """Frames read from ``rx`` and written to ``tx``, impaired by ``imp`` (swapped atomically)."""

    name: str
    rx: socket.socket
    tx: socket.socket
    imp: Impairment = field(default_factory=Impairment)
    counters: Counters = field(default_factory=Counters)
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self._queue: deque[tuple[float, bytes]] = deque()
        self._last_due = 0.0
        self._rate_free = 0.0  # virtual time when the rate limiter is next free

    def _send(self, frame: bytes) -> None:
        try:
            self.tx.send(frame)
        except OSError:
            # ENETDOWN/ENXIO while the link is down, ENOBUFS when a qdisc drops: a wire loses the frame.
            self.counters.tx_errors += 1
            return
        self.counters.tx += 1
        self.counters.tx_bytes += len(frame)

    def _accept(self, frame: bytes, now: float) -> None:
        imp = self.imp
        c = self.counters
        c.rx += 1
        c.rx_bytes += len(frame)
        if imp.loss_pct and self.rng.random() * 100.0 < imp.loss_pct:
            c.lost += 1
            return
        if imp.plain and not self._queue:
            self._send(frame)
            return
        due = now + imp.delay_ms / 1000.0
        if imp.jitter_ms:
            due += self.rng.uniform(-imp.jitter_ms, imp.jitter_ms) / 1000.0
        if imp.rate_mbit:
            start = max(now, self._rate_free)
            if start - now > imp.queue_ms / 1000.0 + 1e-9:
                c.overflow += 1
                return
            self._rate_free = start + (len(frame) * 8) / (imp.rate_mbit * 1e6)
            due += self._rate_free - now
        due = max(due, self._last_due)  # FIFO: jitter never reorders frames
        if len(self._queue) >= 200_000:
            c.overflow += 1
            return
        self._last_due = due
        self._queue.append((due, frame))

    def _flush_due(self, now: float) -> None:
        q = self._queue
        while q and q[0][0] <= now:
            self._send(q.popleft()[1])

    def _recv_failed(self, exc: OSError) -> None:
        """Count a failed receive; ENETDOWN is reported once when the interface goes down: keep serving."""
        if exc.errno not in (errno.ENETDOWN, errno.ENXIO, errno.EINTR):
            log.warning("%s: recv: %s", self.name, exc)
        self.counters.rx_errors += 1

    def _forward_batch(self) -> None:
        """The plain-wire fast path: no per-frame allocation (one reused buffer), no queue."""
        buf, view = self._buf, self._view
        recv_into, send = self.rx.recv_into, self.tx.send
        n = nbytes = errors = 0
        for _ in range(DRAIN_BATCH):
            try:
                size = recv_into(buf)
            except BlockingIOError:
                break
            except OSError as exc:
                self._recv_failed(exc)
                break
            n += 1
            nbytes += size
            try:
                send(view[:size])
            except OSError:
                errors += 1
        c = self.counters
        c.rx += n
        c.rx_bytes += nbytes
        c.tx += n - errors
        c.tx_bytes += nbytes  # approximate when sends failed; tx_errors tells
        c.tx_errors += errors

    def run(self, stop: threading.Event) -> None:
        self._buf = bytearray(RECV_BUF)
        self._view = memoryview(self._buf)
        rx = self.rx
        rx.setblocking(False)
        fds = [rx.fileno()]
        q = self._queue
        monotonic = time.monotonic
        wait = select.select  # microsecond timeouts (poll/epoll round to ms), and only one fd
        while not stop.is_set():
            now = monotonic()
            self._flush_due(now)
            timeout = max(0.0, q[0][0] - now) if q else 0.2
            if not wait(fds, (), (), timeout)[0]:
                continue
            imp = self.imp
            if imp.plain and not imp.loss_pct and not q:
                self._forward_batch()
                continue
            for _ in range(DRAIN_BATCH):
                try:
                    frame = rx.recv(RECV_BUF)
                except BlockingIOError:
                    break
                except OSError as exc:
                    self._recv_failed(exc)
                    break
                self._accept(frame, monotonic())
            self.counters.queued = len(q)


class Relay:
    """Two :class:`Direction` threads between interfaces ``a`` and ``b`` plus a control server."""

    def __init__(self, a: str, b: str, control: str | None = None, vnet: bool = True):
        self.a, self.b = a, b
        self.sock_a = open_packet_socket(a, vnet)
        self.sock_b = open_packet_socket(b, vnet)
        self.dirs = {
            "a2b": Direction("a2b", self.sock_a, self.sock_b),
            "b2a": Direction("b2a", self.sock_b, self.sock_a),
        }
        self.stop_event = threading.Event()
        self._lock = threading.Lock()
        self.control = ControlServer(control, self.handle) if control else None
        self.started = time.time()

    # -- control ---------------------------------------------------------------------------------
    def status(self) -> dict:
        return {
            "a": self.a,
            "b": self.b,
            "pid": os.getpid(),
            "uptime_s": round(time.time() - self.started, 3),
            **{name: {"impairment": asdict(d.imp), "counters": asdict(d.counters)} for name, d in self.dirs.items()},
        }

    def configure(self, direction: str, **changes: float) -> None:
        names = DIRECTIONS if direction == "both" else (direction,)
        for n in names:
            if n not in self.dirs:
                raise ValueError(f"direction must be a2b, b2a or both, not {direction!r}")
        with self._lock:
            new = {n: replace(self.dirs[n].imp, **changes).validate() for n in names}
            for n, imp in new.items():
                self.dirs[n].imp = imp
        log.info("set %s: %s", direction, changes)

    def handle(self, req: dict) -> dict:
        """One control request -> reply. Unknown fields are errors, so typos do not silently no-op."""
        op = req.get("op")
        if op == "get":
            return {"ok": True, **self.status()}
        if op == "set":
            allowed = {f for f in Impairment.__dataclass_fields__}
            changes = {k: v for k, v in req.items() if k not in ("op", "dir")}
            bad = sorted(set(changes) - allowed)
            if bad:
                return {"ok": False, "error": f"unknown field(s) {bad}; allowed: {sorted(allowed)}"}
            try:
                self.configure(req.get("dir", "both"), **{k: float(v) for k, v in changes.items()})
            except (TypeError, ValueError) as exc:
                return {"ok": False, "error": str(exc)}
            return {"ok": True, **self.status()}
        if op == "clear":
            with self._lock:
                for d in self.dirs.values():
                    d.imp = Impairment()
            return {"ok": True, **self.status()}
        return {"ok": False, "error": f"unknown op {op!r} (get, set, clear)"}

    # -- lifecycle -------------------------------------------------------------------------------
    def run(self) -> None:
        threads = [
            threading.Thread(target=d.run, args=(self.stop_event,), name=f"relay-{n}", daemon=True)
            for n, d in self.dirs.items()
        ]
        if self.control:
            self.control.start()
        for t in threads:
            t.start()
        try:
            while not self.stop_event.wait(0.5):
                pass
        finally:
            self.stop_event.set()
            for t in threads:
                t.join(timeout=2)
            if self.control:
                self.control.close()
            self.sock_a.close()
            self.sock_b.close()

    def stop(self) -> None:
        self.stop_event.set()


def relay_argv(a: str, b: str, control: str, *extra: str, python: str = sys.executable) -> list[str]:
    """The command that runs a relay between ``a`` and ``b``; run it inside the link node's namespace
    (Mininet: ``node.popen(relay_argv(...))``; else ``ip netns exec NS`` / ``nsenter -t PID -n --``)."""
    return [python, "-m", "pfepo_lab.impair.relay", "--a", a, "--b", b, "--control", control, *extra]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pfepo_lab.impair.relay",
        description="L2 relay between two interfaces with runtime delay/jitter/loss/rate (no netem needed).",
    )
    p.add_argument("--a", required=True, metavar="IF", help="first interface (e.g. toward the core switch)")
    p.add_argument("--b", required=True, metavar="IF", help="second interface (e.g. toward the region switch)")
    p.add_argument("--control", metavar="PATH", help="UNIX socket path for runtime control (JSON lines)")
    p.add_argument("--delay", type=float, default=0.0, metavar="MS", help="initial one-way delay, each direction")
    p.add_argument("--jitter", type=float, default=0.0, metavar="MS", help="initial jitter (uniform +-MS)")
    p.add_argument("--loss", type=float, default=0.0, metavar="PCT", help="initial loss %% per direction")
    p.add_argument("--rate", type=float, default=0.0, metavar="MBIT", help="initial rate cap per direction")
    p.add_argument("--no-setup", action="store_true", help="do not touch interface offloads/IPv6/up state")
    p.add_argument("--no-vnet", action="store_true", help="plain frames (no virtio-net header); for debugging")
    p.add_argument("--nice", type=int, default=-10, metavar="N",
                   help="scheduling niceness (default -10: a wire should not wait behind busy processes)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="relay: %(message)s")
    try:
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)
    except OSError as exc:
        log.warning("cannot set niceness %d: %s", args.nice, exc)
    # Hand the GIL over quickly between the two directions: a frame should not wait 5 ms for it.
    sys.setswitchinterval(0.0005)
    if not args.no_setup:
        for ifname in (args.a, args.b):
            for w in prepare_interface(ifname):
                log.warning("%s", w)
    try:
        relay = Relay(args.a, args.b, args.control, vnet=not args.no_vnet)
        relay.configure(
            "both", delay_ms=args.delay, jitter_ms=args.jitter, loss_pct=args.loss, rate_mbit=args.rate
        )
    except (OSError, ValueError) as exc:
        print(f"relay: cannot start between {args.a} and {args.b}: {exc}", file=sys.stderr)
        return 1
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: relay.stop())
    relay.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
