"""Config and policy mutation: every mutant loads or fails with located FILE:LINE:COL problems;
never a traceback, never a hang. Plus the known-hostile YAML: alias bombs, tags, deep nesting, size."""

from __future__ import annotations

import random
import re
import resource
import threading
import time
from pathlib import Path

import pytest

from pfepo.config import load_config
from pfepo.policy.loader import load_policies
from pfepo.policy.reload import PolicyReloader
from pfepo.yamlconf import ConfigError, parse_text

REPO = Path(__file__).resolve().parents[2]
LOCATED = re.compile(r"^.+:\d+:\d+: .+")

SNIPPETS = [
    "&a [1,2]", "*a", "!!int \"abc\"", "!!python/object/apply:os.system ['true']", "!!float x", "!!binary AAA",
    "[" * 300 + "]" * 300, "{a: " * 200 + "1" + "}" * 200, "9" * 5000, "1e99999", "-.inf", ".nan", "~", "",
    "? [a, b]\n: c", "!!set {a, b}", "2001-12-14t21:59:43.10-05:00", "\"\\ud800\"", "\t", "'", "{", "- - -",
    "0x" + "f" * 40, "on", "null", "{a: 1, a: 2}", "!<tag:yaml.org,2002:str> x", "%YAML 1.1", "---\n---",
]


def _mutants(text: str, n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    lines = text.splitlines()
    out = []
    for _ in range(n):
        ls = list(lines)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(ls))
            op = rng.randrange(6)
            if op == 0:
                del ls[i]
            elif op == 1:
                ls.insert(i, ls[rng.randrange(len(ls))])
            elif op == 2 and ":" in ls[i]:
                key = ls[i].split(":", 1)[0]
                ls[i] = f"{key}: {rng.choice(SNIPPETS)}"
            elif op == 3:
                ls[i] = ls[i][: rng.randrange(len(ls[i]) + 1)] + rng.choice(SNIPPETS)
            elif op == 4 and ls[i]:
                j = rng.randrange(len(ls[i]))
                ls[i] = ls[i][:j] + chr(rng.choice([0x20, 0x3A, 0x2D, 0x5B, 0x7B, 0x26, 0x2A, 0x21, 0x09, 0x22]))\
                    + ls[i][j + 1:]
            else:
                ls[i] = " " * rng.randrange(6) + ls[i].lstrip()
        out.append("\n".join(ls) + "\n")
    return out


def _load_bounded(fn, timeout: float = 5.0):
    box: dict = {}

    def run():
        try:
            box["ok"] = fn()
        except BaseException as exc:  # noqa: BLE001 - inspected below
            box["exc"] = exc

    t = threading.Thread(target=run, daemon=True)
    t0 = time.monotonic()
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "hang"
    return box, time.monotonic() - t0


def _check(box: dict, text: str) -> None:
    exc = box.get("exc")
    if exc is None:
        return
    assert isinstance(exc, ConfigError), f"{exc!r} for:\n{text[:500]}"
    assert exc.problems and all(LOCATED.match(str(p)) for p in exc.problems), str(exc)


@pytest.mark.parametrize("seed", range(2))
def test_config_mutants(tmp_path, seed):
    src = (REPO / "configs" / "pfepo.yaml").read_text()
    slowest = 0.0
    for i, text in enumerate(_mutants(src, 150, seed)):
        f = tmp_path / f"c{i}.yaml"
        f.write_text(text)
        box, took = _load_bounded(lambda f=f: load_config(f))
        _check(box, text)
        slowest = max(slowest, took)
    assert slowest < 2.0


@pytest.mark.parametrize("seed", range(2))
def test_policy_mutants(tmp_path, seed):
    cfg = load_config(REPO / "configs" / "pfepo.yaml")
    src = (REPO / "policies" / "default.yaml").read_text()
    for i, text in enumerate(_mutants(src, 150, seed)):
        d = tmp_path / f"p{i}"
        d.mkdir()
        (d / "p.yaml").write_text(text)
        box, _ = _load_bounded(lambda d=d: load_policies([d], cfg))
        _check(box, text)


BOMB = """a: &a ["x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: [*g,*g,*g,*g,*g,*g,*g,*g,*g]
"""


@pytest.mark.parametrize("text,where,what", [
    (BOMB, (1, 4), "anchors"),
    ("a: &x 1\nb: *x\n", (1, 4), "anchors"),
    ("a: *x\n", (1, 4), "aliases"),
    ("a: &r [*r]\n", (1, 4), "anchors"),
    ('a:\n  b: !!int "abc"\n', (2, 6), "explicit YAML tags"),
    ("x: !!python/object/apply:os.system ['true']\n", (1, 4), "explicit YAML tags"),
    ("x: !custom 1\n", (1, 4), "explicit YAML tags"),
    ("x: " + "[" * 5000 + "]" * 5000 + "\n", (1, 68), "nesting deeper"),
    ("x: " + "9" * 5000 + "\n", (1, 1), "unreadable YAML value"),
    ("? [a, b]\n: c\n", None, ""),
])
def test_hostile_yaml_is_located(text, where, what):
    t0 = time.monotonic()
    try:
        parse_text(text, "f.yaml")
    except ConfigError as exc:
        (p,) = exc.problems
        assert str(p).startswith("f.yaml:") and what in p.message
        if where:
            assert (p.line, p.col) == where, str(p)
    assert time.monotonic() - t0 < 1.0


def test_oversized_file_refused(tmp_path):
    f = tmp_path / "big.yaml"
    f.write_text("a: " + "x" * 2_000_000 + "\n")
    with pytest.raises(ConfigError, match="larger than"):
        load_config(f)


def test_hot_reload_of_a_bomb_keeps_time_and_memory(tmp_path):
    """The bomb dropped into a watched policy folder: rejected in well under a second, RSS flat."""
    cfg = load_config(REPO / "configs" / "pfepo.yaml")
    d = tmp_path / "policies"
    d.mkdir()
    (d / "default.yaml").write_text((REPO / "policies" / "default.yaml").read_text())
    r = PolicyReloader([d], lambda: cfg, budget_s=2.0)
    assert r.reload() and r.version == 1
    (d / "zz-bomb.yaml").write_text(BOMB)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.monotonic()
    assert not r.reload()
    took = time.monotonic() - t0
    assert took < 1.0 and r.version == 1 and r.current is not None
    assert any("zz-bomb.yaml:1:4" in e and "anchors" in e for e in r.last_error), r.last_error
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0 < 50_000  # KiB


def test_reload_time_budget(tmp_path, monkeypatch):
    """A load that overruns its budget is abandoned; the last good set stays."""
    import pfepo.policy.reload as reload_mod

    cfg = load_config(REPO / "configs" / "pfepo.yaml")
    r = PolicyReloader([REPO / "policies"], lambda: cfg, budget_s=0.3)
    assert r.reload()
    release = threading.Event()
    monkeypatch.setattr(reload_mod, "load_policies", lambda *a, **k: release.wait(5))
    t0 = time.monotonic()
    assert not r.reload()
    assert time.monotonic() - t0 < 1.5 and "longer than 0.3 s" in r.last_error[0]
    assert not r.reload() and "still running" in r.last_error[0]
    release.set()
