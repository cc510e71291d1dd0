"""Loading policies: every problem located at FILE:LINE:COL, references checked, conflicts refused."""

from __future__ import annotations

import pytest

from pfepo.policy.loader import load_policies
from pfepo.yamlconf import ConfigError

GOOD = """\
policies:
  - name: p1
    priority: 10
    match: {services: [web]}
    criteria:
      - {metric: latency_ms, op: ">", threshold: 100, weight: 0.5}
    risk:
      thresholds: {warn: 0.2, act: 0.4}
    actions:
      shift_traffic: {to: auto, step_percent: 10, step_interval_s: 30, max_percent: 80}
"""


def problems(paths, config=None) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_policies([str(p) for p in paths], config)
    return [str(p) for p in exc.value.problems]


def test_good_policy_loads_with_source(pwrite, pcfg):
    f = pwrite("a.yaml", GOOD)
    ps = load_policies([str(f)], pcfg)
    assert [p.name for p in ps.policies] == ["p1"]
    assert ps.sources["p1"] == f"{f}:2"
    assert ps.get("p1").actions.shift_traffic.max_percent == 80


def test_every_problem_located_exactly(pwrite):
    f = pwrite("bad.yaml", """\
        policies:
          - name: p1
            colour: red
            risk:
              thresholds: {act: 0.4}
            criteria:
              - {metric: loss_pct, op: ">", threshold: 150, weight: 0.5}
              - {metric: latency_ms, op: ">", threshold: -5, weight: 0.5}
              - {metric: cpu_pct, op: "=>", threshold: 80, weight: 0.5}
          - name: p2
            risk:
              thresholds: {act: fast}
          - name: p3
            risk:
              thresholds: {warn: 0.5, act: 0.4}
            actions:
              shift_traffic: {step_percent: 20, max_percent: 10}
        """)
    got = problems([f])
    # p1: unknown key on line 3, invalid op on line 9 (pydantic errors); threshold checks need a valid policy
    assert f"{f}:3:5: policies.0.colour: unknown key" in got
    assert any(g.startswith(f"{f}:9:") and "policies.0.criteria.2.op" in g for g in got)
    assert any(g.startswith(f"{f}:12:") and "act" in g for g in got)  # wrong type
    assert f"{f}:15:20: policies.2.risk.thresholds.warn: warn (0.5) must be below act (0.4)" in got
    assert any(g.startswith(f"{f}:17:") and "max_percent (10) is below step_percent (20)" in g for g in got)
    assert len(got) == 5


def test_impossible_thresholds_at_the_threshold(pwrite):
    f = pwrite("t.yaml", """\
        policies:
          - name: p1
            risk: {thresholds: {act: 0.4}}
            criteria:
              - {metric: loss_pct, op: ">", threshold: 150, weight: 0.5}
              - {metric: latency_ms, op: ">", threshold: -5, weight: 0.5}
              - {metric: cpu_pct, op: ">", threshold: 100, weight: 0.5}
              - {metric: priority, op: "==", threshold: urgent, weight: 0.5}
              - {metric: region, op: ">", threshold: eu, weight: 0.5}
              - {metric: my_signal, op: ">", threshold: 7, weight: 0.5}
        """)
    got = problems([f])
    assert got == [
        f"{f}:5:37: policies.0.criteria.0.threshold: impossible threshold 150 for loss_pct (possible values [0, 100])",
        f"{f}:6:39: policies.0.criteria.1.threshold: impossible threshold -5 for latency_ms (possible values >= 0)",
        f"{f}:7:36: policies.0.criteria.2.threshold: 'cpu_pct > 100' can never be true",
        f"{f}:8:38: policies.0.criteria.3.threshold: unknown priority 'urgent' (one of low, medium, high, critical)",
        f"{f}:9:26: policies.0.criteria.4.op: region supports only == and != (got >)",
    ]


def test_unknown_references_need_config(pwrite, pcfg):
    f = pwrite("r.yaml", """\
        policies:
          - name: p1
            match:
              services: [web, shop]
              regions: [eu, mars]
            criteria:
              - {metric: application, op: "==", threshold: games, weight: 1}
            risk: {thresholds: {act: 0.4}}
            actions:
              shift_traffic: {to: [us, moon]}
              scale_application:
                - {region: failover, desired_capacity: 3, executor: k8s}
              allocate_bandwidth:
                - {region: venus, add_mbps: 10}
        """)
    assert load_policies([str(f)], None).get("p1") is not None  # no config: reference checks skipped
    got = problems([f], pcfg)
    assert got == [
        f"{f}:4:23: policies.0.match.services.1: unknown service 'shop' (known: bulk, payments, web)",
        f"{f}:5:21: policies.0.match.regions.1: unknown region 'mars' (known: ap, eu, us)",
        f"{f}:7:41: policies.0.criteria.0.threshold: unknown application 'games' (known: bulk, payments, web)",
        f"{f}:10:32: policies.0.actions.shift_traffic.to.1: unknown region 'moon' (known: ap, eu, us)",
        f"{f}:12:51: policies.0.actions.scale_application.0.executor: unknown executor 'k8s' (known: none defined)",
        f"{f}:14:12: policies.0.actions.allocate_bandwidth.0.region: unknown region 'venus' (known: ap, eu, us)",
    ]


def test_executor_found_when_config_has_them(pwrite, pcfg):
    f = pwrite("e.yaml", """\
        policies:
          - name: p1
            risk: {thresholds: {act: 0.4}}
            actions:
              scale_application: [{desired_capacity: 3, executor: k8s}]
        """)

    class WithExecutors:  # stands in for a future PfepoConfig with `executors`
        def __init__(self, cfg):
            self._cfg = cfg
            self.executors = {"k8s": object()}

        def __getattr__(self, name):
            return getattr(self._cfg, name)

    assert load_policies([str(f)], WithExecutors(pcfg)).get("p1") is not None
    assert "unknown executor 'k8s'" in problems([f], pcfg)[0]


def test_duplicate_names_across_files(pwrite):
    a = pwrite("a.yaml", GOOD)
    b = pwrite("b.yaml", GOOD.replace("priority: 10", "priority: 20"))
    got = problems([pwrite.folder])
    assert got == [f"{b}:2:5: duplicate policy name 'p1' (first defined at {a}:2)"]


def test_conflict_same_priority_overlapping(pwrite, pcfg):
    pwrite("a.yaml", GOOD)
    b = pwrite("b.yaml", GOOD.replace("name: p1", "name: p2").replace("services: [web]", "regions: [eu]"))
    got = problems([pwrite.folder], pcfg)
    assert len(got) == 1 and got[0].startswith(f"{b}:2:5: conflicting policies: 'p2' and 'p1'")
    assert "both select web/eu-web1" in got[0]
    # Same without a config: selectors {services: [web]} and {regions: [eu]} may overlap.
    assert len(problems([pwrite.folder])) == 1


def test_no_conflict_when_disjoint_or_priorities_differ(pwrite, pcfg):
    pwrite("a.yaml", GOOD)
    pwrite("b.yaml", GOOD.replace("name: p1", "name: p2").replace("services: [web]", "services: [bulk]"))
    pwrite("c.yaml", GOOD.replace("name: p1", "name: p3").replace("priority: 10", "priority: 5"))
    ps = load_policies([str(pwrite.folder)], pcfg)
    assert [p.name for p in ps.ordered] == ["p1", "p2", "p3"]


def test_disabled_policies_never_conflict(pwrite, pcfg):
    pwrite("a.yaml", GOOD)
    pwrite("b.yaml", GOOD.replace("name: p1", "name: p2\n    enabled: false"))
    assert len(load_policies([str(pwrite.folder)], pcfg).policies) == 2


def test_policy_selecting_nothing_is_rejected(pwrite, pcfg):
    f = pwrite("n.yaml", GOOD.replace("services: [web]", "services: [bulk], regions: [ap]"))
    assert problems([f], pcfg) == [f"{f}:4:5: policies.0.match: selects no endpoint of the config"]


def test_file_level_problems(pwrite, tmp_path):
    empty = pwrite("empty.yaml", "")
    syntax = pwrite("syntax.yaml", "policies: [\n")
    wrong = pwrite("wrong.yaml", "policy: []\n")
    none = pwrite("none.yaml", "policies: []\n")
    got = problems([empty, syntax, wrong, none, tmp_path / "missing.yaml"])
    assert got[0] == f"{tmp_path / 'missing.yaml'}:1:1: no such file or directory"
    assert f"{empty}:1:1: file is empty" in got
    assert any(g.startswith(f"{syntax}:2:1: YAML syntax error") for g in got)
    assert f"{wrong}:1:1: policy: unknown key (a policy file holds only 'policies')" in got
    assert f"{none}:1:1: policies: expected a non-empty list of policies" in got


def test_empty_folder_is_a_problem(tmp_path):
    (tmp_path / "d").mkdir()
    assert problems([tmp_path / "d"]) == [f"{tmp_path / 'd'}:1:1: no policy files (*.yaml, *.yml) in this folder"]


def test_shipped_policies_are_valid(pcfg):
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "policies"
    ps = load_policies([str(root), str(root / "examples")], pcfg)
    assert {p.name for p in ps.policies} == {"default", "payments-strict", "bulk-relaxed"}
    assert [p.name for p in ps.ordered][0] == "payments-strict"


# -- never a traceback: any document either loads or raises ConfigError with located problems
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as hst  # noqa: E402

_KEYS = ["policies", "name", "priority", "match", "services", "regions", "criteria", "metric", "op",
         "threshold", "weight", "apply_to", "risk", "thresholds", "act", "warn", "actions", "shift_traffic",
         "to", "step_percent", "max_percent", "safety", "failback", "below", "probability", "impact", "x"]
_scalars = hst.none() | hst.booleans() | hst.integers(-200, 200) | hst.floats(allow_nan=True) \
    | hst.sampled_from(["eu", "web", ">", "auto", "loss_pct", "high", "p1", ""])
_docs = hst.recursive(_scalars, lambda inner: hst.lists(inner, max_size=4)
                      | hst.dictionaries(hst.sampled_from(_KEYS), inner, max_size=5), max_leaves=25)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=_docs)
def test_any_document_loads_or_fails_with_located_problems(tmp_path, pcfg, doc):
    import yaml

    f = tmp_path / "fuzz.yaml"
    f.write_text(yaml.safe_dump({"policies": [doc]} if isinstance(doc, dict) else doc))
    try:
        load_policies([str(f)], pcfg)
    except ConfigError as exc:
        assert exc.problems and all(p.file == str(f) and p.line >= 1 and p.col >= 1 for p in exc.problems)
