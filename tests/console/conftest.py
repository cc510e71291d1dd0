"""Console fixtures: the real REST app (uvicorn on a free loopback port) with the console mounted, a
policy folder, an audit log and the history store; no switch attached (the browser tests use the lab)."""

from __future__ import annotations

import contextlib
import re
import shutil
from pathlib import Path

import httpx
import pytest

from pfepo.api.server import ApiServer, create_app
from pfepo.config import PfepoConfig
from pfepo.controller.audit import AuditLog
from pfepo.daemon import build_runtime
from pfepo.policy.reload import PolicyReloader
from tests.api.conftest import TOKENS, add_tokens

FAST_POLICY = Path(__file__).parent.parent / "data" / "fast-policy.yaml"


@pytest.fixture
def console(cfg_dict, tmp_path):
    """(rt, base_url, policy_file): the daemon's runtime with policies and audit, its API and console."""
    pdir = tmp_path / "policies"
    pdir.mkdir()
    policy = pdir / "fast.yaml"
    shutil.copyfile(FAST_POLICY, policy)
    d = add_tokens(cfg_dict)
    d["policy"] = {"paths": [str(pdir)]}
    d["predict"] = {"enabled": False}
    cfg = PfepoConfig.model_validate(d)
    rt = build_runtime(cfg)
    rt.reloader = PolicyReloader(cfg.policy.paths, lambda: cfg)
    assert rt.reloader.reload(), rt.reloader.last_error
    rt.audit = AuditLog(tmp_path / "audit.jsonl")
    srv = ApiServer(create_app(rt), "127.0.0.1", 0)
    srv.start()
    yield rt, f"http://127.0.0.1:{srv.bound_port}", policy
    srv.stop()
    rt.audit.close()
    rt.writer.close()


@contextlib.contextmanager
def login(base: str, role: str):
    """A client holding a console session for ``role`` (as a browser would after the login form)."""
    with httpx.Client(base_url=base, timeout=10) as c:
        r = c.post("/ui/login", data={"token": TOKENS[role]})
        assert r.status_code == 303, r.text
        yield c


def csrf(c: httpx.Client, path: str = "/ui/operations") -> str:
    m = re.search(r'name="csrf-token" content="([^"]+)"', c.get(path).text)
    assert m, "no CSRF token in the page"
    return m.group(1)
