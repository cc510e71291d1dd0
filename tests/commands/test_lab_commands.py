"""The lab commands without the ``lab`` extra: one line naming the extra and exit status 2, no traceback.

A core install (``pip install pfepo``) has no Mininet or matplotlib; we stand that in by making the
import fail (``sys.modules[name] = None`` raises ModuleNotFoundError exactly as a missing package does).
"""

from __future__ import annotations

import sys

import pytest

from pfepo.cli import main
from pfepo.commands._lab import LAB_HINT, is_lab_module


@pytest.fixture
def no_lab(monkeypatch):
    for name in list(sys.modules):
        if name.split(".")[0] in ("pfepo_lab", "mininet", "matplotlib"):
            monkeypatch.delitem(sys.modules, name)
    for name in ("pfepo_lab", "mininet", "matplotlib"):
        monkeypatch.setitem(sys.modules, name, None)


@pytest.mark.parametrize("argv", [
    ["bench", "history", "--rows", "10"],
    ["bench", "--help"],
    ["impair", "--state", "/nonexistent.json", "eu", "show"],
    ["demo"],
])
def test_lab_command_without_extra_exits_2_with_hint(no_lab, capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"pfepo {argv[0]}: {LAB_HINT}" in err
    assert "Traceback" not in err


def test_core_commands_work_without_extra(no_lab, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--help"])
    assert exc.value.code == 0
    assert "--config" in capsys.readouterr().out


def test_bench_lists_benchmarks_with_lab(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage: pfepo bench" in out and "history" in out and "failover" in out


def test_only_lab_modules_count():
    assert is_lab_module("mininet.net") and is_lab_module("matplotlib") and is_lab_module("pfepo_lab.bench")
    assert not is_lab_module("numpy") and not is_lab_module(None)
