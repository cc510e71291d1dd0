"""TLS: REST over HTTPS (uvicorn) with and without client certificates, and a real OVS bridge
connecting to the daemon over ``ssl:`` with mutual authentication. Certificates are made here."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from mininet_topologies.multiregion import TopoSpec
from pfepo.config import RestTlsConfig
from tests.security.certs import TestCA
from tests.security.conftest import bearer, serve
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]


def _client_ctx(ca: Path, cert=None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert.cert), str(cert.key))
    return ctx


def test_rest_over_https(cfg_dict, tmp_path):
    ca = TestCA(tmp_path)
    srv = ca.issue("pfepo-rest")
    tls = RestTlsConfig(certfile=str(srv.cert), keyfile=str(srv.key))
    cfg_dict["rest"]["tls"] = tls.model_dump()
    with serve(cfg_dict, tls=tls) as (_rt, url):
        assert url.startswith("https://")
        with httpx.Client(base_url=url, verify=_client_ctx(ca.path), timeout=5) as c:
            assert c.get("/api/v1/health", headers=bearer("read")).status_code == 200
            assert c.get("/api/v1/health").status_code == 401  # TLS does not replace tokens
        with pytest.raises(httpx.ConnectError):  # a client that does not trust the CA refuses the server
            httpx.get(url + "/api/v1/health", verify=True, timeout=5)
        with pytest.raises(httpx.HTTPError):  # plain HTTP to the TLS port gets no answer
            httpx.get(url.replace("https", "http") + "/api/v1/health", timeout=5)


def test_rest_mutual_tls(cfg_dict, tmp_path):
    ca = TestCA(tmp_path)
    srv, client = ca.issue("pfepo-rest"), ca.issue("operator", server=False)
    (tmp_path / "rogue").mkdir()
    stranger = TestCA(tmp_path / "rogue", "rogue-ca").issue("stranger", server=False)
    tls = RestTlsConfig(certfile=str(srv.cert), keyfile=str(srv.key), client_ca=str(ca.path))
    with serve(cfg_dict, tls=tls) as (_rt, url):
        with httpx.Client(base_url=url, verify=_client_ctx(ca.path, client), timeout=5) as c:
            assert c.get("/api/v1/health", headers=bearer("read")).status_code == 200
        for ctx in (_client_ctx(ca.path), _client_ctx(ca.path, stranger)):
            with pytest.raises(httpx.HTTPError):
                httpx.get(url + "/api/v1/health", verify=ctx, headers=bearer("read"), timeout=5).raise_for_status()


# --- OpenFlow over TLS with a real Open vSwitch bridge -------------------------------------------------
def _vsctl(*args: str, check: bool = True) -> str:
    return subprocess.run(["ovs-vsctl", "--timeout=10", *args], capture_output=True, text=True,
                          check=check).stdout.strip()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.ovs
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ovs-vsctl"), reason="needs root and Open vSwitch")
def test_openflow_over_mutual_tls_with_ovs(tmp_path):
    """The daemon listens with TLS and requires a switch certificate from its CA: a bridge with a
    certificate from another CA never connects; with the right one it connects over ssl:."""
    ca = TestCA(tmp_path)
    ctl, sw = ca.issue("pfepo-controller"), ca.issue("switch")
    (tmp_path / "rogue").mkdir()
    rogue = TestCA(tmp_path / "rogue", "rogue-ca").issue("rogue-switch")
    of_port, rest_port, token = _free_port(), _free_port(), secrets.token_urlsafe(24)
    cfg = TopoSpec(prefix="psec").config(of_port=of_port, rest_port=rest_port, state_dir=str(tmp_path / "state"),
                                         history_path=str(tmp_path / "h.sqlite"), api_token=token)
    cfg["openflow"]["tls"] = {"privkey": str(ctl.key), "cert": str(ctl.cert), "ca_certs": str(ca.path)}
    cfg["policy"] = {"paths": [str(REPO / "policies")]}
    cfg["predict"] = {"enabled": False}
    (tmp_path / "pfepo.yaml").write_text(yaml.safe_dump(cfg))
    bridge = "psec" + secrets.token_hex(2)
    saved_ssl = _vsctl("get-ssl")
    log = open(tmp_path / "daemon.log", "w")  # noqa: SIM115 - closed below
    daemon = subprocess.Popen([sys.executable, "-m", "pfepo.cli", "run", "--config", str(tmp_path / "pfepo.yaml")],
                              stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    api = httpx.Client(base_url=f"http://127.0.0.1:{rest_port}", headers={"Authorization": f"Bearer {token}"},
                       timeout=3)

    def connected() -> int:
        try:
            return api.get("/api/v1/health").json()["switches_connected"]
        except httpx.HTTPError:
            return -1

    try:
        wait_until(lambda: connected() == 0, 30, "the daemon's API (no switch yet)", interval=0.2)
        _vsctl("set-ssl", str(rogue.key), str(rogue.cert), str(ca.path))
        _vsctl("add-br", bridge, "--", "set", "bridge", bridge, "datapath_type=netdev", "protocols=OpenFlow13",
               "fail-mode=secure", "other-config:datapath-id=0000000000000001")
        target = f"ssl:127.0.0.1:{of_port}"
        _vsctl("--", "--id=@c", "create", "Controller", f'target="{target}"', "max_backoff=1000",
               "--", "set", "bridge", bridge, "controller=@c")
        with pytest.raises(AssertionError):  # 4 s in which the rogue switch must not get in
            wait_until(lambda: connected() > 0, 4, "a switch with a certificate from another CA", interval=0.2)
        _vsctl("set-ssl", str(sw.key), str(sw.cert), str(ca.path))
        wait_until(lambda: connected() == 1, 30, "the switch with our CA's certificate", interval=0.2)
        wait_until(lambda: _vsctl("--bare", "--columns=is_connected", "find", "Controller",
                                  f'target="{target}"') == "true", 15,
                   "OVS to show the controller connected", interval=0.2)  # OVS updates this column lazily
        wait_until(lambda: api.get("/api/v1/services/web").json()["applied"] != {}, 20, "weights applied",
                   interval=0.2)
    except AssertionError:
        print((tmp_path / "daemon.log").read_text()[-2000:])
        raise
    finally:
        api.close()
        _vsctl("--if-exists", "del-br", bridge, check=False)
        if saved_ssl:
            lines = dict(x.split(": ", 1) for x in saved_ssl.splitlines() if ": " in x)
            _vsctl("set-ssl", lines.get("Private key", ""), lines.get("Certificate", ""),
                   lines.get("CA Certificate", ""), check=False)
        else:
            _vsctl("del-ssl", check=False)
        if daemon.poll() is None:
            daemon.terminate()
            try:
                daemon.wait(15)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait(5)
        log.close()
