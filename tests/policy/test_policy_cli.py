"""`pfepo validate` and `pfepo policy schema`: exit codes, one located line per problem, no tracebacks."""

from __future__ import annotations

import json

import pytest

from pfepo.cli import main

GOOD = """\
policies:
  - name: p1
    match: {services: [web]}
    risk: {thresholds: {act: 0.4}}
"""


def test_validate_ok_with_config(pwrite, config_file, capsys):
    pwrite("a.yaml", GOOD)
    assert main(["validate", "--config", str(config_file), str(pwrite.folder)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: 1 policies in 1 file(s) (checked against") and out.count("\n") == 1


def test_validate_without_config_says_checks_skipped(pwrite, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no configs/pfepo.yaml here
    f = pwrite("a.yaml", GOOD.replace("[web]", "[nosuch]"))
    assert main(["validate", str(f)]) == 0
    assert "reference checks skipped" in capsys.readouterr().out


def test_validate_uses_default_config_when_present(pwrite, config_file, capsys, monkeypatch, tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "pfepo.yaml").write_text(config_file.read_text())
    monkeypatch.chdir(tmp_path)
    f = pwrite("a.yaml", GOOD.replace("[web]", "[nosuch]"))
    assert main(["validate", str(f)]) == 1
    assert capsys.readouterr().out == (f"{f}:3:24: policies.0.match.services.0: unknown service 'nosuch' "
                                       "(known: bulk, payments, web)\n")
    assert main(["validate", "--no-config", str(f)]) == 0


def test_validate_reports_every_problem_one_per_line(pwrite, config_file, capsys):
    f = pwrite("bad.yaml", """\
        policies:
          - name: p1
            criteria:
              - {metric: loss_pct, op: ">", threshold: 150, weight: 1}
            risk: {thresholds: {act: 0.4}}
            actions:
              shift_traffic: {to: [eu, mars]}
          - name: p2
            priority: high
            risk: {thresholds: {act: 0.4}}
        """)
    assert main(["validate", "--config", str(config_file), str(f)]) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines == [
        f"{f}:4:37: policies.0.criteria.0.threshold: impossible threshold 150 for loss_pct (possible values [0, 100])",
        f"{f}:7:32: policies.0.actions.shift_traffic.to.1: unknown region 'mars' (known: ap, eu, us)",
        f"{f}:9:5: policies.1.priority: Input should be a valid integer, unable to parse string as an integer",
    ]
    assert "Traceback" not in captured.out + captured.err and "3 problem(s)" in captured.err


def test_validate_bad_config_and_missing_path(pwrite, tmp_path, capsys):
    bad = tmp_path / "cfg.yaml"
    bad.write_text("regions: 3\n")
    assert main(["validate", "--config", str(bad), str(tmp_path)]) == 1
    assert capsys.readouterr().out.startswith(f"{bad}:")
    assert main(["validate", "--no-config", str(tmp_path / "nope")]) == 1
    assert capsys.readouterr().out == f"{tmp_path / 'nope'}:1:1: no such file or directory\n"


def test_validate_shipped_policies_against_shipped_config(capsys, monkeypatch):
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(root)
    assert main(["validate", "policies"]) == 0, capsys.readouterr().out


def test_policy_schema_is_json_schema_of_a_policy_file(capsys, tmp_path):
    assert main(["policy", "schema"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["title"] == "PF-EPO policy file" and doc["required"] == ["policies"]
    assert doc["additionalProperties"] is False
    assert "shift_traffic" in doc["$defs"]["Actions"]["properties"]
    out = tmp_path / "s.json"
    assert main(["policy", "schema", "-o", str(out)]) == 0 and json.loads(out.read_text()) == doc


def test_help_works(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["validate", "--help"])
    assert exc.value.code == 0 and "FILE:LINE:COL" in capsys.readouterr().out


def test_shipped_policies_validate_against_the_exported_schema(capsys):
    """What editors check (the schema) agrees with the loader on the shipped files."""
    jsonschema = pytest.importorskip("jsonschema")
    from pathlib import Path

    import yaml

    assert main(["policy", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    root = Path(__file__).resolve().parents[2] / "policies"
    files = sorted(root.glob("*.yaml")) + sorted((root / "examples").glob("*.yaml"))
    assert len(files) == 3
    for f in files:
        jsonschema.validate(yaml.safe_load(f.read_text()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"policies": [{"name": "x", "risk": {"thresholds": {"act": 1}}, "colour": 1}]}, schema)
