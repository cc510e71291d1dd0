"""``pfepo validate [--config FILE] PATH...``: check policy files/folders, one located line per problem."""

from __future__ import annotations

import sys
from pathlib import Path

DEFAULT_CONFIG = "configs/pfepo.yaml"


def register(sub) -> None:
    p = sub.add_parser(
        "validate",
        help="validate policy files or folders (exit 0 if valid, else FILE:LINE:COL: message per problem)",
        description="Validate PF-EPO policy files. Folders are searched for *.yaml/*.yml. With a daemon config "
        f"(--config, or {DEFAULT_CONFIG} when it exists) every service, region, endpoint, application and "
        "executor a policy names must exist, and conflicts are checked on the real endpoints. Exit status 0 "
        "when valid; otherwise 1 and one line per problem: FILE:LINE:COL: message.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="policy file or folder")
    p.add_argument("--config", metavar="FILE", help=f"daemon config for reference checks (default: {DEFAULT_CONFIG} if present)")
    p.add_argument("--no-config", action="store_true", help="skip the checks that need the daemon config")
    p.set_defaults(func=run)


def run(args) -> int:
    from pfepo.config import load_config
    from pfepo.policy.loader import load_policies
    from pfepo.yamlconf import ConfigError

    config = None
    config_path = None if args.no_config else (args.config or (DEFAULT_CONFIG if Path(DEFAULT_CONFIG).is_file() else None))
    if config_path is not None:
        try:
            config = load_config(config_path)
        except ConfigError as exc:
            for prob in exc.problems:
                print(prob)
            print(f"invalid daemon config {config_path}: {len(exc.problems)} problem(s); policies not checked",
                  file=sys.stderr)
            return 1
        except UnicodeDecodeError as exc:
            print(f"{config_path}:1:1: not UTF-8 text ({exc.reason} at byte {exc.start})")
            return 1
    try:
        pset = load_policies(args.paths, config)
    except ConfigError as exc:
        for prob in exc.problems:
            print(prob)
        print(f"{len(exc.problems)} problem(s)", file=sys.stderr)
        return 1
    where = f"checked against {config_path}" if config is not None else "no daemon config: reference checks skipped"
    print(f"OK: {len(pset.policies)} policies in {len(pset.files)} file(s) ({where})")
    return 0
