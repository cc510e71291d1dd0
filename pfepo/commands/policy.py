"""``pfepo policy schema``: the JSON Schema of a policy file, for editor validation and completion."""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("policy", help="policy tools (schema)")
    psub = p.add_subparsers(dest="policy_command", metavar="ACTION")
    s = psub.add_parser("schema", help="print the JSON Schema of a policy file (see docs/policies.md for editors)")
    s.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    s.set_defaults(func=schema)
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
