"""``pfepo policy schema``: the JSON Schema of a policy file, for editor validation and completion."""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("policy", help="policy tools (schema, apply)")
    psub = p.add_subparsers(dest="policy_command", metavar="ACTION")
    s = psub.add_parser("schema", help="print the JSON Schema of a policy file (see docs/policies.md for editors)")
    s.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    s.set_defaults(func=schema)
    register_apply(psub)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def schema_text() -> str:
    from pfepo.policy.model import PolicyFile

    doc = PolicyFile.model_json_schema()
    doc = {"$schema": "https://json-schema.org/draft/2020-12/schema", **doc}
    return json.dumps(doc, indent=2) + "\n"


def schema(args) -> int:
    text = schema_text()
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as exc:
            print(f"pfepo policy schema: cannot write {args.output}: {exc.strerror or exc}")
            return 1
    else:
        print(text, end="")
    return 0


# --- pfepo policy apply (issue 15: one consistent policy across controllers, stored in etcd) ----------


def register_apply(psub) -> None:
    a = psub.add_parser("apply", help="validate policy files and store them in the cluster's etcd (new revision)",
                        description="Validate like `pfepo validate` (against the daemon config) and, only if "
                        "valid, store the files in etcd as a new policy revision; every controller of the "
                        "cluster hot-reloads it. Invalid input is rejected and the last good revision kept.")
    a.add_argument("paths", nargs="+", metavar="PATH", help="policy file or folder")
    a.add_argument("--config", default="configs/pfepo.yaml", metavar="FILE",
                   help="daemon config with a cluster: section (default: configs/pfepo.yaml)")
    a.set_defaults(func=apply_cmd)


def apply_cmd(args) -> int:
    from pfepo.config import load_config
    from pfepo.yamlconf import ConfigError

    try:
        cfg = load_config(args.config)
    except (ConfigError, OSError) as exc:
        print(f"pfepo policy apply: cannot load {args.config}:\n{exc}")
        return 1
    if cfg.cluster is None:
        print(f"pfepo policy apply: {args.config} has no cluster: section (nothing to store policies in)")
        return 1
    from pfepo.cluster import policysync
    from pfepo.cluster.etcd import EtcdCoordinator, EtcdError

    c = cfg.cluster
    coord = EtcdCoordinator(c.endpoints, c.name, c.controller_id, c.region, c.lease_ttl_s, c.timeout_s)
    try:
        rev = policysync.apply(coord, args.paths, cfg)
    except ConfigError as exc:
        for prob in exc.problems:
            print(prob)
        print(f"{len(exc.problems)} problem(s): nothing stored, the cluster keeps its last good revision")
        return 1
    except EtcdError as exc:
        print(f"pfepo policy apply: etcd at {c.endpoints[0]} failed: {exc}")
        return 1
    print(f"OK: policy revision {rev} stored in cluster {c.name!r}")
    return 0
