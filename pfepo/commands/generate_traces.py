"""``pfepo generate-traces --out DIR --seed N``: synthetic telemetry traces (CSV format: docs/prediction.md).

One CSV per scenario: failures with precursors (latency creep, loss ramp, link saturation, CPU
exhaustion), failures without (sudden failure, flapping) and benign load (daily cycles, busy hours,
short spikes) that must not trigger failover. The seed fully determines the set. With ``--families``
the broad training/evaluation families of pfepo.traces.families are written instead (each trace with
its own sampling interval of 1-60 s, or ``--sampling-s``).
"""

from __future__ import annotations

import sys


def register(sub) -> None:
    # not from .generate: it imports pandas, and every command's start-up pays for what register imports
    from pfepo.traces.scenarios import SCENARIOS

    p = sub.add_parser(
        "generate-traces",
        help="write synthetic telemetry trace CSVs (failures with/without precursors, benign load)",
        description=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write <scenario>-s<seed>.csv into")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--scenarios",
        nargs="+",
        choices=SCENARIOS,
        metavar="NAME",
        help=f"subset of scenarios (default all): {', '.join(SCENARIOS)}",
    )
    p.add_argument("--families", nargs="*", metavar="FAMILY",
                   help="write pfepo.traces.families traces instead (no names: all families)")
    p.add_argument("--sampling-s", type=float, help="with --families: sampling interval for every trace (1-60 s)")
    p.add_argument("--endpoints", type=int, default=4, help="endpoints per trace (default 4)")
    p.add_argument("--failing", type=int, default=2, help="failing endpoints per failure trace (default 2)")
    p.add_argument("--failure-hours", type=float, default=3.0, help="length of failure traces (default 3 h, 5 s rows)")
    p.add_argument("--benign-hours", type=float, default=24.0, help="length of benign traces (default 24 h, 10 s rows)")
    p.set_defaults(func=run)


def run(args) -> int:
    from pfepo.traces.generate import SCENARIOS, Sizes, generate

    if args.families is not None:
        from pfepo.traces.families import FAMILIES, generate_families

        fams = tuple(args.families or FAMILIES)
        unknown = [f for f in fams if f not in FAMILIES]
        if unknown:
            print(f"pfepo generate-traces: unknown family {unknown[0]!r}; known: {', '.join(FAMILIES)}", file=sys.stderr)
            return 2
        if args.sampling_s is not None and not (0.1 <= args.sampling_s <= 600):
            print("pfepo generate-traces: --sampling-s must be between 0.1 and 600", file=sys.stderr)
            return 2
        try:
            paths = generate_families(args.out, args.seed, fams, dt=args.sampling_s, progress=lambda p: print(p))
        except OSError as exc:
            print(f"pfepo generate-traces: cannot write to {args.out}: {exc}", file=sys.stderr)
            return 2
        print(f"{len(paths)} trace(s) written (seed {args.seed})")
        return 0

    if args.endpoints < 1 or not (0 <= args.failing <= args.endpoints):
        print("pfepo generate-traces: need --endpoints >= 1 and 0 <= --failing <= --endpoints", file=sys.stderr)
        return 2
    if not (0.5 <= args.failure_hours <= 240 and 0.5 <= args.benign_hours <= 240):
        print("pfepo generate-traces: trace lengths must be between 0.5 and 240 hours", file=sys.stderr)
        return 2
    sizes = Sizes(
        endpoints=args.endpoints, failing=args.failing, failure_hours=args.failure_hours, benign_hours=args.benign_hours
    )
    try:
        paths = generate(args.out, args.seed, tuple(args.scenarios or SCENARIOS), sizes, progress=lambda p: print(p))
    except OSError as exc:
        print(f"pfepo generate-traces: cannot write to {args.out}: {exc}", file=sys.stderr)
        return 2
    print(f"{len(paths)} trace(s) written (seed {args.seed})")
    return 0
