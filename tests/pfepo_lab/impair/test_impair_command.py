"""``pfepo impair`` end to end on the namespace lab, and its refusals (no tracebacks)."""

from __future__ import annotations

import json

import pytest

from pfepo.cli import main
from pfepo_lab.impair.impair import CmdRunner, PidRunner
from pfepo_lab.impair.state import save_state


@pytest.fixture
def state_file(lab, tmp_path):
    path = tmp_path / "state.json"
    save_state(lab.state(), path)
    return str(path)


def test_delay_show_and_clear_via_cli(lab, imp, state_file, capsys):
    assert main(["impair", "--state", state_file, "lnk", "delay", "15"]) == 0
    r = lab.probe(count=30, interval=0.005)
    assert 30.0 <= r["rtt_min"] and r["rtt_p50"] <= 35.0, r
    assert main(["impair", "--state", state_file, "lnk", "show"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["relays"]["lnk"]["a2b"]["impairment"]["delay_ms"] == 15.0
    assert main(["impair", "--state", state_file, "lnk", "clear"]) == 0
    assert lab.probe(count=20, interval=0.005)["rtt_p50"] < 3.0


def test_down_up_via_cli(lab, imp, state_file):
    assert main(["impair", "--state", state_file, "reg", "down"]) == 0
    assert lab.probe(count=10, interval=0.005, wait=0.3)["loss_pct"] == 100
    assert main(["impair", "--state", state_file, "reg", "up"]) == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["nowhere", "delay", "5"], "unknown target 'nowhere'"),
        (["left", "delay", "5"], "is a host"),
        (["lnk", "loss", "5", "--direction", "sideways"], "direction must be one of"),
        (["lnk:nope0", "down"], "has no interface nope0"),
    ],
)
def test_refusals_are_one_line_messages(lab, state_file, capsys, argv, message):
    assert main(["impair", "--state", state_file, *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_missing_state_file(tmp_path, capsys):
    assert main(["impair", "--state", str(tmp_path / "none.json"), "eu", "up"]) == 2
    assert "cannot read state file" in capsys.readouterr().err


def test_relay_gone_is_reported(lab, tmp_path, capsys):
    st = lab.state()
    st.links["lnk"].control = str(tmp_path / "no-relay.ctl")
    save_state(st, tmp_path / "s.json")
    assert main(["impair", "--state", str(tmp_path / "s.json"), "lnk", "delay", "5"]) == 2
    assert "relay control socket" in capsys.readouterr().err


def test_pid_and_cmd_runners_enter_the_namespace(lab):
    """PidRunner (nsenter) and CmdRunner (a node.cmd-like function) act in the relay's namespace."""
    pid = lab.relay_proc.pid
    assert lab.if_a in PidRunner(pid)(["ip", "-o", "link"])

    def node_cmd(line: str) -> str:  # what Mininet's node.cmd would do, minus the shell it keeps
        import subprocess

        return subprocess.run(["ip", "netns", "exec", lab.mid, "sh", "-c", line], capture_output=True,
                              text=True).stdout

    run = CmdRunner(node_cmd)
    assert lab.if_b in run(["ip", "-o", "link"])
    assert run.run(["false"])[0] == 1
