"""Checks run before the daemon starts anything: each failure is one line naming the setting (exit 2).

Without them a busy or unresolvable OpenFlow address logged "listening" and the daemon exited 0, and a
busy REST port, a ``state_dir`` that is a file, a missing token file or an unwritable audit path gave a
traceback. A check here cannot rule out a race (the port taken between check and bind); the daemon
still reports those, but the common mistakes are named before any thread starts.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
import ssl
from pathlib import Path

from pfepo.config import PfepoConfig

log = logging.getLogger(__name__)


def check_startup(cfg: PfepoConfig) -> str | None:
    """The first problem that would stop the daemon, as ``setting: what is wrong``; None when fine."""
    for check in (_paths, _tokens, _tls, _exposure, _ports):
        problem = check(cfg)
        if problem:
            return problem
    return None


def openflow_args(of) -> list[str]:
    """os-ken command-line options for ``config.OpenFlowConfig`` (plain TCP, or TLS on the same port)."""
    args = ["--ofp-listen-host", of.listen_host]
    if of.tls is None:
        return [*args, "--ofp-tcp-listen-port", str(of.listen_port)]
    args += ["--ofp-ssl-listen-port", str(of.listen_port), "--ctl-privkey", of.tls.privkey,
             "--ctl-cert", of.tls.cert]
    if of.tls.ca_certs:
        args += ["--ca-certs", of.tls.ca_certs]  # os-ken then requires a switch certificate (mutual TLS)
    return args


# --- paths --------------------------------------------------------------------------------------------
def _writable_dir(setting: str, path: Path) -> str | None:
    if path.exists() and not path.is_dir():
        return f"{setting}: {path} is not a directory"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".pfepo-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return f"{setting}: {path} is not writable ({exc.strerror or exc})"
    return None


def _appendable_file(setting: str, path: Path) -> str | None:
    if path.is_dir():
        return f"{setting}: {path} is a directory"
    problem = _writable_dir(setting, path.parent)
    if problem:
        return problem
    try:
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        return f"{setting}: cannot write {path} ({exc.strerror or exc})"
    return None


def _paths(cfg: PfepoConfig) -> str | None:
    problem = _writable_dir("state_dir", Path(cfg.state_dir))
    if problem:
        return problem
    if cfg.policy.audit_path:
        problem = _appendable_file("policy.audit_path", Path(cfg.policy.audit_path))
    else:
        problem = _appendable_file("state_dir", Path(cfg.state_dir) / "audit.jsonl")
    if problem:
        return problem
    if cfg.history.backend in ("sqlite", "duckdb") and cfg.history.path != ":memory:":
        p = Path(cfg.history.path)
        if p.is_dir():
            return f"history.path: {p} is a directory"
        return _writable_dir("history.path", p.parent)
    return None


# --- tokens and TLS -----------------------------------------------------------------------------------
def _tokens(cfg: PfepoConfig) -> str | None:
    from pfepo.api.auth import TokenError, load_tokens, resolve_token

    try:
        load_tokens(cfg.rest)
        sig = cfg.signals
        if sig.token_file is not None:
            resolve_token("signals", None, sig.token_file, None)
    except TokenError as exc:
        return str(exc)
    return None


def _tls(cfg: PfepoConfig) -> str | None:
    rest, of = cfg.rest.tls, cfg.openflow.tls
    if rest is not None:
        problem = _cert_pair("rest.tls", rest.certfile, rest.keyfile, rest.client_ca, "client_ca")
        if problem:
            return problem
    if of is not None:
        return _cert_pair("openflow.tls", of.cert, of.privkey, of.ca_certs, "ca_certs")
    return None


def _cert_pair(setting: str, cert: str, key: str, ca: str | None, ca_name: str) -> str | None:
    for name, path in (("cert" if setting.startswith("openflow") else "certfile", cert),
                       ("privkey" if setting.startswith("openflow") else "keyfile", key), (ca_name, ca)):
        if path is not None and not Path(path).is_file():
            return f"{setting}.{name}: no such file {path}"
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        return f"{setting}: certificate and key do not load ({exc.__class__.__name__}: {exc})"
    if ca is not None:
        try:
            ctx.load_verify_locations(ca)
        except (ssl.SSLError, OSError) as exc:
            return f"{setting}.{ca_name}: CA file does not load ({exc})"
    return None


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _exposure(cfg: PfepoConfig) -> str | None:
    rest = cfg.rest
    if not is_loopback(rest.host) and not rest.allow_insecure_remote and (rest.tls is None or not rest.tokens):
        return (f"rest.host: {rest.host} is reachable from other machines; set rest.tls and rest.tokens "
                "(or rest.allow_insecure_remote: true to accept the risk)")
    if not is_loopback(cfg.openflow.listen_host) and cfg.openflow.tls is None:
        log.warning("openflow.listen_host %s without openflow.tls: anyone who can reach it can pose as a switch",
                    cfg.openflow.listen_host)
    return None


# --- ports --------------------------------------------------------------------------------------------
def _ports(cfg: PfepoConfig) -> str | None:
    problem = _bindable("rest", cfg.rest.host, cfg.rest.port)
    if problem:
        return problem
    return _bindable("openflow", cfg.openflow.listen_host, cfg.openflow.listen_port, host_key="listen_host",
                     port_key="listen_port")


def _bindable(section: str, host: str, port: int, host_key: str = "host", port_key: str = "port") -> str | None:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        return f"{section}.{host_key}: cannot resolve {host!r} ({getattr(exc, 'strerror', None) or exc})"
    family, socktype, proto, _canon, addr = infos[0]
    with socket.socket(family, socktype, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the real servers do
        try:
            s.bind(addr)
            s.listen(1)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"{section}.{port_key}: {host}:{port} is already in use"
            if exc.errno == errno.EADDRNOTAVAIL:
                return f"{section}.{host_key}: {host} is not an address of this machine"
            if exc.errno == errno.EACCES:
                return f"{section}.{port_key}: no permission to listen on port {port}"
            return f"{section}.{host_key}: cannot listen on {host}:{port} ({exc.strerror or exc})"
    return None
