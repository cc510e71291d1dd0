"""Load policy files/folders into a PolicySet, reporting every problem as FILE:LINE:COL: message.

Each policy is validated on its own, so a typo in one policy does not hide the problems of the next.
With a daemon config, every name a policy refers to (service, region, endpoint, application, SLA tier,
executor) must exist: a policy that points at nothing is rejected, not silently ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from pfepo.policy.context import EndpointContext, contexts_from_config
from pfepo.policy.model import Policy, semantic_problems
from pfepo.policy.policyset import PolicySet, matches, may_overlap
from pfepo.yamlconf import (
    MAX_BYTES,
    ConfigError,
    LocatedDoc,
    Problem,
    parse_file,
    parse_text,
    validation_problems,
)

if TYPE_CHECKING:
    from pfepo.config import PfepoConfig

POLICY_SUFFIXES = (".yaml", ".yml")


def expand_paths(paths: Iterable[str | Path]) -> tuple[list[Path], list[Problem]]:
    """Files as given; folders -> their own *.yaml/*.yml files (not subfolders, not hidden files), sorted."""
    files: list[Path] = []
    problems: list[Problem] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix in POLICY_SUFFIXES
                           and not f.name.startswith("."))
            if not found:
                problems.append(Problem(str(p), 1, 1, "no policy files (*.yaml, *.yml) in this folder"))
            files.extend(found)
        elif p.exists():
            files.append(p)
        else:
            problems.append(Problem(str(p), 1, 1, "no such file or directory"))
    seen: set[Path] = set()
    unique = []
    for f in files:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique, problems


class _Entry:
    __slots__ = ("policy", "doc", "index")

    def __init__(self, policy: Policy, doc: LocatedDoc, index: int):
        self.policy, self.doc, self.index = policy, doc, index

    def problem(self, loc: tuple, message: str) -> Problem:
        return self.doc.problem(("policies", self.index, *loc), message)

    @property
    def where(self) -> str:
        line, _ = self.doc.where(("policies", self.index))
        return f"{self.doc.file}:{line}"


def load_policies(paths: Sequence[str | Path], config: PfepoConfig | None = None) -> PolicySet:
    """Load every policy under ``paths``; raise ConfigError listing all located problems.

    Without ``config`` the checks that need it (names exist, conflicts on real endpoints) are replaced
    by selector-only conflict checks.
    """
    files, problems = expand_paths(paths)
    entries: list[_Entry] = []
    for f in files:
        try:
            doc = _parse(f)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        problems.extend(_read_doc(doc, entries))
    problems.extend(_duplicate_names(entries))
    contexts = contexts_from_config(config) if config is not None else None
    if config is not None:
        for e in entries:
            refs = reference_errors(e.policy, config)
            problems.extend(e.problem(loc, f"{_path(('policies', e.index, *loc))}: {msg}") for loc, msg in refs)
            if not refs and e.policy.enabled and contexts is not None \
                    and not any(matches(e.policy, c) for c in contexts):
                problems.append(e.problem(("match",), f"policies.{e.index}.match: selects no endpoint of the config"))
    problems.extend(_conflicts(entries, contexts))
    if problems:
        order = {str(f): i for i, f in enumerate(files)}
        raise ConfigError(sorted(problems, key=lambda p: (order.get(p.file, -1), p.line, p.col)))
    return PolicySet(
        policies=tuple(e.policy for e in entries),
        sources={e.policy.name: e.where for e in entries},
        files=tuple(str(f) for f in files),
    )


def _parse(path: Path) -> LocatedDoc:
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ConfigError([Problem(str(path), 1, 1, f"file is larger than {MAX_BYTES} bytes")])
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem(str(path), 1, 1, f"not UTF-8 text ({exc.reason} at byte {exc.start})")]) from None
    except OSError:
        return parse_file(path)  # reports the OS error as a located problem
    return parse_text(text, str(path))


_BOOL_KEY_HINT = " (YAML reads a bare on/off/yes/no key as a boolean; criteria use 'apply_to', not 'on')"


def _read_doc(doc: LocatedDoc, entries: list[_Entry]) -> list[Problem]:
    data = doc.data
    if data is None:
        return [Problem(doc.file, 1, 1, "file is empty")]
    if not isinstance(data, dict):
        return [doc.problem((), "expected a mapping with a 'policies' list")]
    problems = [doc.problem((k,), f"{k}: unknown key (a policy file holds only 'policies')")
                for k in data if k != "policies"]
    items = data.get("policies")
    if "policies" not in data:
        return [*problems, doc.problem((), "policies: required field is missing")]
    if not isinstance(items, list) or not items:
        return [*problems, doc.problem(("policies",), "policies: expected a non-empty list of policies")]
    for i, item in enumerate(items):
        try:
            policy = Policy.model_validate(item)
        except ValidationError as exc:
            problems.extend(
                Problem(p.file, p.line, p.col, p.message + _BOOL_KEY_HINT) if p.message.endswith("Keys should be strings")
                else p for p in validation_problems(doc, exc, prefix=("policies", i)))
            continue
        found = semantic_problems(policy)
        problems.extend(doc.problem(("policies", i, *loc), f"{_path(('policies', i, *loc))}: {msg}")
                        for loc, msg in found)
        entries.append(_Entry(policy, doc, i))
    return problems


def _path(loc: tuple) -> str:
    return ".".join(str(p) for p in loc)


def _duplicate_names(entries: list[_Entry]) -> list[Problem]:
    first: dict[str, _Entry] = {}
    out = []
    for e in list(entries):
        prev = first.get(e.policy.name)
        if prev is not None:
            out.append(e.problem(("name",), f"duplicate policy name {e.policy.name!r} (first defined at {prev.where})"))
            entries.remove(e)
        else:
            first[e.policy.name] = e
    return out


def _conflicts(entries: list[_Entry], contexts: list[EndpointContext] | None) -> list[Problem]:
    out = []
    live = [e for e in entries if e.policy.enabled]
    for i, a in enumerate(live):
        for b in live[i + 1:]:
            if a.policy.priority != b.policy.priority or not may_overlap(a.policy, b.policy, contexts):
                continue
            both = ""
            if contexts is not None:
                ep = next(c for c in contexts if matches(a.policy, c) and matches(b.policy, c))
                both = f" (both select {ep.service or '-'}/{ep.endpoint})"
            out.append(b.problem(("name",), f"conflicting policies: {b.policy.name!r} and {a.policy.name!r} "
                                 f"({a.where}) have the same priority {a.policy.priority} and can match the "
                                 f"same endpoint{both}; give them different priorities"))
    return out


def config_names(config: PfepoConfig) -> dict[str, set[str]]:
    """Names a policy may refer to, by kind."""
    tiers = {getattr(s.sla, "tier", None) for s in config.services}
    tiers |= {getattr(e.sla, "tier", None) for r in config.regions for e in r.endpoints}
    ex = getattr(config, "executors", None) or {}
    executors = set(ex) if isinstance(ex, dict) else {getattr(x, "name", str(x)) for x in ex}
    return {
        "service": {s.name for s in config.services},
        "region": {r.name for r in config.regions},
        "endpoint": {e.name for r in config.regions for e in r.endpoints},
        "application": {e.application for r in config.regions for e in r.endpoints}
        | {s.application for s in config.services},
        "sla_tier": {t for t in tiers if t},
        "executor": executors,
    }


def reference_errors(p: Policy, config: PfepoConfig) -> list[tuple[tuple, str]]:
    """(loc relative to the policy, message) for every name the config does not define."""
    names = config_names(config)
    out: list[tuple[tuple, str]] = []

    def need(kind: str, value: str | None, loc: tuple) -> None:
        if value is not None and value not in names[kind]:
            known = ", ".join(sorted(names[kind])) or "none defined"
            out.append((loc, f"unknown {kind.replace('_', ' ')} {value!r} (known: {known})"))

    fields = {"services": "service", "regions": "region", "endpoints": "endpoint",
              "applications": "application", "sla_tiers": "sla_tier"}
    for attr, kind in fields.items():
        for j, v in enumerate(getattr(p.match, attr)):
            need(kind, v, ("match", attr, j))
    for i, c in enumerate(p.criteria):
        if c.metric in names and c.metric != "executor" and isinstance(c.threshold, str):
            need(c.metric, c.threshold, ("criteria", i, "threshold"))
    a = p.actions
    if a.shift_traffic is not None and isinstance(a.shift_traffic.to, list):
        for j, r in enumerate(a.shift_traffic.to):
            need("region", r, ("actions", "shift_traffic", "to", j))
    for j, b in enumerate(a.allocate_bandwidth):
        if b.region != "failover":
            need("region", b.region, ("actions", "allocate_bandwidth", j, "region"))
    for j, s in enumerate(a.scale_application):
        if s.region != "failover":
            need("region", s.region, ("actions", "scale_application", j, "region"))
        need("application", s.application, ("actions", "scale_application", j, "application"))
        need("executor", s.executor, ("actions", "scale_application", j, "executor"))
    return out
