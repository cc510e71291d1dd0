"""A drain hook for the lab: ``python -m pfepo_lab.impair.drainhook --state FILE REGION drain|undrain``.

What a command executor runs when the planner starts (``drain``) or ends (``undrain``) a drain: every
server of REGION answers ``Connection: close`` (see mininet_topologies.httpserver), so keep-alive
clients reconnect through the new split. It imports only the impairment code (``pfepo impair`` loads
every command and takes seconds to start on a busy machine; a hook must act within the evict grace).
"""

from __future__ import annotations

import argparse
import sys

from pfepo_lab.impair.impair import Impairer, ImpairError
from pfepo_lab.impair.state import StateError, load_state


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--state", required=True, help="the lab's impairment state file")
    ap.add_argument("region", help="region (or server host) to drain")
    ap.add_argument("action", choices=("drain", "undrain"))
    args = ap.parse_args(argv)
    try:
        Impairer(load_state(args.state)).server(args.region, args.action)
    except (StateError, ImpairError) as exc:
        print(f"drainhook: {exc}", file=sys.stderr)
        return 2
    print(f"{args.region}: {args.action}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
