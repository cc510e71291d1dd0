"""Ask for an address by ARP every ``--interval`` s from a host's interface and time the answers:
``python -m mininet_topologies.arpprobe IFACE TARGET_IP --duration S`` prints a JSON summary (asked,
answered, the longest time without an answer). A VIP's ARP requests are answered by the controller
MASTER of the client's switch, so this shows whether a mastership handover leaves clients unable to
resolve the VIP (the kernel gives up on an address after 3 unanswered requests, 1 s apart). Needs root
(a raw AF_PACKET socket) and runs inside the host's network namespace."""

from __future__ import annotations

import argparse
import json
import select
import socket
import sys
import time

from pfepo.openflow import frames


def probe(iface: str, target: str, duration: float, interval: float) -> dict:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(frames.ETH_ARP))
    s.bind((iface, 0))
    mac = frames.mac_str(s.getsockname()[4][:6])
    src_ip = _ipv4(iface)
    asked = answered = 0
    start = last = time.monotonic()
    longest = 0.0
    next_ask = start
    while (now := time.monotonic()) < start + duration:
        if now >= next_ask:
            s.send(frames.arp_frame(frames.ARP_REQUEST, mac, src_ip, "ff:ff:ff:ff:ff:ff", target))
            asked += 1
            next_ask = now + interval
        ready, _, _ = select.select([s], [], [], max(0.0, next_ask - time.monotonic()))
        if ready:
            arp = frames.parse_arp(s.recv(2048))
            if arp is not None and arp[0] == frames.ARP_REPLY and arp[2] == target and arp[4] == src_ip:
                t = time.monotonic()
                longest, last = max(longest, t - last), t
                answered += 1
    longest = max(longest, time.monotonic() - last)
    s.close()
    return {"asked": asked, "answered": answered, "longest_unanswered_s": round(longest, 3)}


def _ipv4(iface: str) -> str:
    import fcntl
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        req = struct.pack("256s", iface.encode()[:15])
        return socket.inet_ntoa(fcntl.ioctl(u.fileno(), 0x8915, req)[20:24])  # SIOCGIFADDR


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mininet_topologies.arpprobe", description=__doc__.split("\n")[0])
    ap.add_argument("iface")
    ap.add_argument("target")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--interval", type=float, default=0.1)
    args = ap.parse_args(argv)
    json.dump(probe(args.iface, args.target, args.duration, args.interval), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
