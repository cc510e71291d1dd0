"""``pfepo run --config FILE``: the controller daemon."""

from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser(
        "run",
        help="run the controller daemon (OpenFlow 1.3 + REST API)",
        description="Run PF-EPO against OpenFlow switches. Switches connect to --config's openflow.listen_port "
        "(default 6653); the REST API listens on rest.host:rest.port.",
    )
    p.add_argument("--config", required=True, metavar="FILE", help="daemon config YAML (see configs/pfepo.yaml)")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.set_defaults(func=_run)


def _run(args) -> int:
    from pfepo.config import load_config  # here, not at the top: pydantic would slow every command's start-up
    from pfepo.yamlconf import ConfigError

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        for prob in exc.problems:
            print(prob, file=sys.stderr)
        return 2
    from pfepo.daemon import run

    return run(cfg, args.log_level)
