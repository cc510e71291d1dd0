"""``pfepo impair``: change a running topology's links at runtime (delay, loss, rate cap, down/up).

The topology writes a state file (format in :mod:`pfepo_lab.impair.state`, docs/impairment.md) naming each
link node's namespace, interfaces and relay control socket; this command reads it and acts.
"""

from __future__ import annotations

import argparse
import json
import sys

from pfepo.commands._lab import lab_command

EPILOG = """\
examples:
  pfepo impair --state /tmp/topo/state.json eu delay 25          # +25 ms each way (RTT +50 ms)
  pfepo impair --state S eu delay 25 --jitter 5 --direction a2b  # only core -> region
  pfepo impair --state S eu loss 10                              # 10 % per direction
  pfepo impair --state S h1 loss 30 --direction out              # iptables on a host
  pfepo impair --state S eu rate 5                               # tc tbf, 5 Mbit/s
  pfepo impair --state S eu down | up | clear | show
gray failures (the link stays up):
  pfepo impair --state S eu blackhole                            # relay drops everything (clear undoes)
  pfepo impair --state S eu server hang                          # every eu server: accept, never answer
  pfepo impair --state S eu-1 server crash                       # refused/reset (iptables REJECT)
  pfepo impair --state S eu server brownout 30                   # 30 % of requests get HTTP 503
  pfepo impair --state S eu server ok                            # back to normal
  pfepo impair --state S eu server drain                         # Connection: close (a drain hook)

TARGET is a link node, a region (all its link nodes) or a host; NAME:INTF picks one interface.
Directions: links both|a2b|b2a (a = core side, b = region side); hosts both|out|in.
"""


def _number(kind: str, lo: float, hi: float | None = None):
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{kind} must be a number, not {text!r}") from None
        if v != v or v < lo or (hi is not None and v > hi):
            rng = f">= {lo:g}" if hi is None else f"within {lo:g}..{hi:g}"
            raise argparse.ArgumentTypeError(f"{kind} must be {rng}, not {text}")
        return v

    return parse


def register(sub) -> None:
    p = sub.add_parser(
        "impair",
        help="add delay/loss/rate cap or take a link down at runtime (no netem needed)",
        description="Impair a link, region or host of a running topology described by a state file.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--state", required=True, metavar="FILE", help="JSON state file written by the topology")
    p.add_argument("target", metavar="TARGET", help="link node, region or host name (NAME:INTF for one interface)")
    acts = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    d = acts.add_parser("delay", help="one-way delay in ms added in each selected direction")
    d.add_argument("ms", type=_number("delay", 0, 60_000), metavar="MS")
    d.add_argument("--jitter", type=_number("jitter", 0, 60_000), default=0.0, metavar="MS")
    loss = acts.add_parser("loss", help="random loss in percent, per direction")
    loss.add_argument("pct", type=_number("loss", 0, 100), metavar="PCT")
    r = acts.add_parser("rate", help="egress bandwidth cap in Mbit/s (tc tbf)")
    r.add_argument("mbit", type=_number("rate", 0.001), metavar="MBIT")
    for a in (d, loss, r):
        a.add_argument("--direction", default="both", help="both (default), a2b, b2a for links; out, in for hosts")
    acts.add_parser("blackhole", help="drop every frame on the link(s), carrier stays up (gray failure)")
    srv = acts.add_parser("server", help="server gray failure: ok | hang | crash | brownout PCT; "
                          "drain | undrain (Connection: close on every response)")
    srv.add_argument("mode", choices=("ok", "hang", "crash", "brownout", "drain", "undrain"))
    srv.add_argument("pct", nargs="?", type=_number("brown-out share", 0, 100), default=0.0, metavar="PCT",
                     help="brownout: share of requests answered 503")
    acts.add_parser("down", help="set the interface(s) down: the switch port loses carrier")
    acts.add_parser("up", help="set the interface(s) up again")
    acts.add_parser("clear", help="remove every impairment and bring interfaces up")
    acts.add_parser("show", help="print relay settings, counters, qdiscs and link flags as JSON")
    p.set_defaults(func=run)


@lab_command("impair")
def run(args: argparse.Namespace) -> int:
    from pfepo_lab.impair.impair import Impairer, ImpairError
    from pfepo_lab.impair.state import StateError, load_state

    try:
        imp = Impairer(load_state(args.state))
        t = args.target
        match args.action:
            case "delay":
                imp.set_delay(t, args.ms, args.jitter, args.direction)
            case "loss":
                imp.set_loss(t, args.pct, args.direction)
            case "rate":
                imp.set_bandwidth(t, args.mbit, args.direction)
            case "blackhole":
                imp.blackhole(t)
            case "server":
                imp.server(t, args.mode, args.pct)
            case "down":
                imp.link_down(t)
            case "up":
                imp.link_up(t)
            case "clear":
                imp.clear(t)
            case "show":
                print(json.dumps(imp.show(t), indent=2))
    except (StateError, ImpairError) as exc:
        print(f"pfepo impair: {exc}", file=sys.stderr)
        return 2
    return 0
