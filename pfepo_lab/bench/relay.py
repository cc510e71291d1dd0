"""``pfepo bench relay``: TCP throughput through the impairment relay vs a direct veth, same run.

Two endpoint settings, because they exercise different relay paths: default offloads (TSO frames of up
to 64 KiB cross the relay in one syscall) and offloads off, as on Mininet hosts with ``txo=False``
(every MTU-size frame is one recv + one send in Python). Also the RTT and TCP rate with 25 ms each way.
"""

from __future__ import annotations

import argparse
import json
import sys

from pfepo_lab.impair.lab import DIRECT_RIGHT_IP, LabError, RelayLab, can_run


def register(sub) -> None:
    p = sub.add_parser("relay", help="iperf3 TCP through the userspace relay vs a direct veth (needs root)",
                       description="TCP throughput (iperf3) through the impairment relay vs a direct veth, "
                                   "in throw-away network namespaces; also RTT with 25 ms each way. Needs root.")
    p.add_argument("--seconds", type=float, default=3.0, help="length of each iperf3 run (default 3)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=run)


def measure(seconds: float) -> dict:
    results: dict = {}
    with RelayLab(direct=True) as lab:
        lab.echo_server()
        imp = lab.impairer()
        direct = {"src": f"{lab.p}DL", "dst_ns": f"{lab.p}DR", "dst": DIRECT_RIGHT_IP}
        for mode in ("offloads_on", "offloads_off"):
            if mode == "offloads_off":
                for ns, intf in ((lab.left, lab.if_left), (lab.right, lab.if_right),
                                 (f"{lab.p}DL", f"{lab.p}x"), (f"{lab.p}DR", f"{lab.p}y")):
                    lab.run(ns, ["ethtool", "-K", intf, "tx", "off", "rx", "off"])
            results[mode] = {
                "direct_mbit": round(lab.iperf(seconds, **direct), 1),
                "relay_mbit": round(lab.iperf(seconds), 1),
                "relay_reverse_mbit": round(lab.iperf(seconds, reverse=True), 1),
            }
        results["rtt_ms_plain"] = round(lab.probe(count=100, interval=0.005)["rtt_p50"], 3)
        imp.set_delay("lnk", 25)
        probe = lab.probe(count=100, interval=0.005)
        results["delay_25ms_each_way"] = {
            "rtt_p50_ms": round(probe["rtt_p50"], 2),
            "rtt_max_ms": round(probe["rtt_max"], 2),
            "tcp_mbit_offloads_off": round(lab.iperf(seconds), 1),
        }
    return results


def run(args: argparse.Namespace) -> int:
    why = can_run()
    if why:
        print(f"pfepo bench relay: {why}", file=sys.stderr)
        return 2
    if args.seconds <= 0:
        print("pfepo bench relay: --seconds must be > 0", file=sys.stderr)
        return 2
    try:
        res = measure(args.seconds)
    except LabError as exc:
        print(f"pfepo bench relay: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"iperf3 TCP, {args.seconds:g} s per run, Mbit/s (receiver side)")
    print(f"{'endpoints':<14}{'direct veth':>12}{'relay':>10}{'relay -R':>10}")
    for mode in ("offloads_on", "offloads_off"):
        r = res[mode]
        print(f"{mode:<14}{r['direct_mbit']:>12.1f}{r['relay_mbit']:>10.1f}{r['relay_reverse_mbit']:>10.1f}")
    d = res["delay_25ms_each_way"]
    print(f"RTT plain relay p50 {res['rtt_ms_plain']:.3f} ms; with 25 ms each way p50 {d['rtt_p50_ms']} ms "
          f"(max {d['rtt_max_ms']}), TCP {d['tcp_mbit_offloads_off']} Mbit/s")
    return 0
