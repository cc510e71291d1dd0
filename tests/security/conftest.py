"""A real API server (uvicorn on a free loopback port) for the security tests, with one token per role."""

from __future__ import annotations

import contextlib
from pathlib import Path

import httpx
import pytest

from pfepo.api.server import ApiServer, create_app
from pfepo.config import PfepoConfig
from pfepo.daemon import build_runtime
from tests.api.conftest import TOKENS, add_tokens, bearer

__all__ = ["TOKENS", "bearer", "serve"]
REPO = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def serve(cfg_dict: dict, policies: bool = False, tls=None):
    """Runtime + API over real HTTP; ``policies``: load the repo's policies (safety rules, audit log)."""
    from pfepo.controller.audit import AuditLog
    from pfepo.policy.reload import PolicyReloader

    if "tokens" not in cfg_dict.get("rest", {}):
        add_tokens(cfg_dict)
    cfg = PfepoConfig.model_validate(cfg_dict)
    rt = build_runtime(cfg)
    if policies:
        rt.reloader = PolicyReloader([str(REPO / "policies")], lambda: cfg)
        assert rt.reloader.reload(), rt.reloader.last_error
        rt.audit = AuditLog(f"{cfg.state_dir}/audit.jsonl")
    srv = ApiServer(create_app(rt), "127.0.0.1", 0, tls=tls)
    srv.start()
    try:
        yield rt, f"{srv.scheme}://127.0.0.1:{srv.bound_port}"
    finally:
        srv.stop()
        rt.writer.close()
        if rt.audit is not None:
            rt.audit.close()


@pytest.fixture
def server(cfg_dict):
    with serve(cfg_dict, policies=True) as (rt, url):
        with httpx.Client(base_url=url, timeout=5) as c:
            yield rt, c
