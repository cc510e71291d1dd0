"""Every startup failure exits 2 with one line naming the setting, from the real CLI (``pfepo run``)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mininet_topologies.multiregion import TopoSpec
from pfepo.config import PfepoConfig
from pfepo.startup import check_startup, openflow_args

REPO = Path(__file__).resolve().parents[2]
GOOD_TOKEN = "t" * 24


def _cfg(tmp_path: Path, **over) -> dict:
    cfg = TopoSpec().config(of_port=_free(), rest_port=_free(), state_dir=str(tmp_path / "state"),
                            history_path=str(tmp_path / "h.sqlite"), api_token=GOOD_TOKEN)
    cfg["policy"] = {"paths": [str(REPO / "policies")]}
    cfg["predict"] = {"enabled": False}
    for k, v in over.items():
        cfg[k] = {**cfg.get(k, {}), **v} if isinstance(v, dict) else v
    return cfg


def _free() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(tmp_path: Path, cfg: dict) -> subprocess.CompletedProcess:
    path = tmp_path / "pfepo.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return subprocess.run([sys.executable, "-m", "pfepo.cli", "run", "--config", str(path)], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)


def _listening(port: int) -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen(1)
    return s


def test_busy_ports_exit_2_from_the_cli(tmp_path):
    cfg = _cfg(tmp_path)
    with _listening(cfg["rest"]["port"]):
        r = _run(tmp_path, cfg)
    assert r.returncode == 2 and r.stderr.strip() == f"rest.port: 127.0.0.1:{cfg['rest']['port']} is already in use"
    with _listening(cfg["openflow"]["listen_port"]):
        r = _run(tmp_path, cfg)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == f"openflow.listen_port: 127.0.0.1:{cfg['openflow']['listen_port']} is already in use"
    assert "Traceback" not in r.stderr + r.stdout


def test_short_token_file_exits_2_from_the_cli(tmp_path):
    (tmp_path / "tok").write_text("x\n")
    cfg = _cfg(tmp_path, rest={"tokens": [{"name": "a", "role": "admin", "token_file": str(tmp_path / "tok")}]})
    r = _run(tmp_path, cfg)
    assert r.returncode == 2 and "rest.tokens.0.token_file" in r.stderr and "shorter than 16" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "x\n" not in r.stdout


@pytest.mark.parametrize("over,expect", [
    ({"openflow": {"listen_host": "no-such-host.invalid"}}, "openflow.listen_host: cannot resolve"),
    ({"openflow": {"listen_host": "192.0.2.77"}}, "openflow.listen_host: 192.0.2.77 is not an address"),
    ({"rest": {"tokens": [{"name": "a", "role": "read", "token_file": "/nonexistent/tok"}]}},
     "rest.tokens.0.token_file: cannot read /nonexistent/tok"),
    ({"signals": {"token_file": "/nonexistent/sig"}}, "signals.token_file: cannot read"),
    ({"rest": {"tokens": [{"name": "a", "role": "read", "token_env": "PFEPO_NOT_SET_ANYWHERE"}]}},
     "rest.tokens.0.token_env ($PFEPO_NOT_SET_ANYWHERE): environment variable is not set"),
    ({"rest": {"host": "0.0.0.0"}}, "rest.host: 0.0.0.0 is reachable from other machines"),
    ({"rest": {"tls": {"certfile": "/nonexistent.crt", "keyfile": "/nonexistent.key"}}},
     "rest.tls.certfile: no such file"),
])
def test_startup_problems_name_the_setting(tmp_path, over, expect):
    problem = check_startup(PfepoConfig.model_validate(_cfg(tmp_path, **over)))
    assert problem is not None and problem.startswith(expect), problem
    assert "\n" not in problem


def test_unusable_paths(tmp_path):
    f = tmp_path / "afile"
    f.write_text("")
    assert check_startup(PfepoConfig.model_validate(_cfg(tmp_path, state_dir=str(f)))) \
        == f"state_dir: {f} is not a directory"
    p = check_startup(PfepoConfig.model_validate(_cfg(tmp_path, policy={"audit_path": str(f / "audit.jsonl")})))
    assert p == f"policy.audit_path: {f} is not a directory"
    p = check_startup(PfepoConfig.model_validate(_cfg(tmp_path, policy={"audit_path": str(tmp_path)})))
    assert p == f"policy.audit_path: {tmp_path} is a directory"
    p = check_startup(PfepoConfig.model_validate(_cfg(tmp_path, history={"path": str(f / "h.sqlite")})))
    assert p == f"history.path: {f} is not a directory"
    assert check_startup(PfepoConfig.model_validate(_cfg(tmp_path))) is None


def test_state_dir_is_a_file_from_the_cli(tmp_path):
    f = tmp_path / "afile"
    f.write_text("")
    r = _run(tmp_path, _cfg(tmp_path, state_dir=str(f)))
    assert r.returncode == 2 and r.stderr.strip() == f"state_dir: {f} is not a directory"


def test_openflow_tls_args():
    from pfepo.config import OpenFlowConfig

    plain = openflow_args(OpenFlowConfig(listen_port=6000))
    assert plain == ["--ofp-listen-host", "127.0.0.1", "--ofp-tcp-listen-port", "6000"]
    tls = openflow_args(OpenFlowConfig(listen_port=6000, tls={"privkey": "k", "cert": "c", "ca_certs": "ca"}))
    assert tls == ["--ofp-listen-host", "127.0.0.1", "--ofp-ssl-listen-port", "6000", "--ctl-privkey", "k",
                   "--ctl-cert", "c", "--ca-certs", "ca"]
