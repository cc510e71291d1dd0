"""UDP echo probe: round-trip time and loss between two namespaces, without ``ping``.

Why: ``iputils-ping`` is not installed on the project machines, and a probe we own gives exact counts
(sent, echoed, RTT percentiles) as JSON. Run the server in one namespace and the client in the other::

    python -m pfepo_lab.impair.probe serve --port 7777            # prints "ready" once bound
    python -m pfepo_lab.impair.probe send 10.0.0.2 --port 7777 --count 200 --interval 0.005
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import struct
import sys
import time

_HDR = struct.Struct("!IQd")  # magic-ish run id, sequence, send time
MAGIC = 0x50465049


def serve(port: int, bind: str = "0.0.0.0") -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((bind, port))
    print("ready", flush=True)
    while True:
        data, addr = s.recvfrom(65535)
        s.sendto(data, addr)


def send(host: str, port: int, count: int, interval: float, size: int = 64, wait: float = 1.0) -> dict:
    """Send ``count`` datagrams ``interval`` s apart; an echo arriving within ``wait`` s of the last
    send counts. Returns sent/received/loss_pct and RTT stats in ms."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((host, port))
    s.setblocking(False)
    pad = b"\0" * max(0, size - _HDR.size)
    rtts: dict[int, float] = {}

    def drain() -> None:
        while True:
            try:
                data = s.recv(65535)
            except (BlockingIOError, ConnectionRefusedError):
                return
            if len(data) < _HDR.size:
                continue
            magic, seq, t0 = _HDR.unpack_from(data)
            if magic == MAGIC and seq not in rtts:
                rtts[seq] = (time.monotonic() - t0) * 1000.0

    start = time.monotonic()
    for seq in range(count):
        target = start + seq * interval
        while (now := time.monotonic()) < target:
            drain()
            time.sleep(min(0.0005, target - now))
        try:
            s.send(_HDR.pack(MAGIC, seq, time.monotonic()) + pad)
        except (BlockingIOError, ConnectionRefusedError, OSError):
            pass
        drain()
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and len(rtts) < count:
        drain()
        time.sleep(0.001)
    values = sorted(rtts.values())
    result: dict = {"sent": count, "received": len(values), "loss_pct": 100.0 * (count - len(values)) / count}
    if values:
        result.update(
            rtt_min=values[0],
            rtt_avg=statistics.fmean(values),
            rtt_p50=values[len(values) // 2],
            rtt_p90=values[int(len(values) * 0.9)],
            rtt_p99=values[int(len(values) * 0.99)],
            rtt_max=values[-1],
        )
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pfepo_lab.impair.probe", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="mode", required=True)
    ps = sub.add_parser("serve", help="echo every datagram back")
    ps.add_argument("--port", type=int, default=7777)
    ps.add_argument("--bind", default="0.0.0.0")
    pc = sub.add_parser("send", help="measure RTT and loss, print JSON")
    pc.add_argument("host")
    pc.add_argument("--port", type=int, default=7777)
    pc.add_argument("--count", type=int, default=100)
    pc.add_argument("--interval", type=float, default=0.01, help="seconds between datagrams")
    pc.add_argument("--size", type=int, default=64)
    pc.add_argument("--wait", type=float, default=1.0, help="seconds to wait for late echoes")
    args = p.parse_args(argv)
    try:
        if args.mode == "serve":
            serve(args.port, args.bind)
        else:
            if args.count < 1 or args.interval < 0:
                p.error("--count must be >= 1 and --interval >= 0")
            print(json.dumps(send(args.host, args.port, args.count, args.interval, args.size, args.wait)))
    except OSError as exc:
        print(f"probe: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
