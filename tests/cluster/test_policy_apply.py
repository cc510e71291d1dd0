"""`pfepo policy apply` against a real etcd, and two controllers' mirrors hot-reloading a new revision."""

from __future__ import annotations

import statistics
import time

import pytest
import yaml

from pfepo.cli import main
from pfepo.cluster.etcd import EtcdCoordinator
from pfepo.cluster.policysync import PolicyMirror
from pfepo.policy.reload import PolicyReloader
from tests.waiting import wait_until

pytestmark = pytest.mark.etcd

GOOD = """\
policies:
  - name: p1
    match: {services: [web]}
    risk: {thresholds: {act: 0.%d}}
"""


@pytest.fixture
def cluster_cfg(etcd, cfg_dict, tmp_path):
    cfg_dict["cluster"] = {"endpoints": [etcd.endpoint], "name": "t", "controller_id": "ops", "lease_ttl_s": 3}
    path = tmp_path / "pfepo.yaml"
    path.write_text(yaml.safe_dump(cfg_dict))
    return path


def test_apply_stores_only_valid_policies(cluster_cfg, etcd, tmp_path, capsys):
    f = tmp_path / "p.yaml"
    f.write_text(GOOD % 4)
    assert main(["policy", "apply", "--config", str(cluster_cfg), str(f)]) == 0
    assert "OK: policy revision" in capsys.readouterr().out
    coord = EtcdCoordinator(etcd.endpoint, "t", "reader")
    good = coord.policy()
    assert list(good.files.values()) == [GOOD % 4]
    f.write_text(GOOD.replace("[web]", "[nosuch]") % 4)
    assert main(["policy", "apply", "--config", str(cluster_cfg), str(f)]) == 1
    out = capsys.readouterr().out
    assert f"{f}:3:24:" in out and "unknown service 'nosuch'" in out and "last good revision" in out
    assert coord.policy() == good  # the last good revision is kept


def test_apply_without_cluster_section_is_refused(cfg_dict, tmp_path, capsys):
    path = tmp_path / "pfepo.yaml"
    path.write_text(yaml.safe_dump(cfg_dict))
    f = tmp_path / "p.yaml"
    f.write_text(GOOD % 4)
    assert main(["policy", "apply", "--config", str(path), str(f)]) == 1
    assert "no cluster: section" in capsys.readouterr().out


def test_two_controllers_run_each_new_revision_within_2s(cluster_cfg, etcd, cfg, tmp_path, capsys):
    """Propagation = from `policy apply` returning to both controllers' reloaders running the new set."""
    controllers = []
    for cid in ("c-east", "c-west"):
        coord = EtcdCoordinator(etcd.endpoint, "t", cid, ttl_s=3)
        coord.join()
        folder = tmp_path / cid
        folder.mkdir()
        reloader = PolicyReloader([folder], lambda: cfg)
        mirror = PolicyMirror(coord, folder, lambda _rev, r=reloader: r.reload()).start()
        controllers.append((coord, reloader, mirror))
    f = tmp_path / "p.yaml"
    delays = []
    try:
        for i in range(1, 6):
            f.write_text(GOOD % i)
            t0 = time.monotonic()
            assert main(["policy", "apply", "--config", str(cluster_cfg), str(f)]) == 0
            t1 = time.monotonic()
            rev = int(capsys.readouterr().out.split("revision ")[1].split()[0])
            wait_until(lambda rev=rev, i=i: all(m.revision == rev and r.current is not None
                                   and r.current.get("p1").risk.thresholds.act == i / 10
                                   for _, r, m in controllers), timeout=2, message=f"revision {rev} everywhere",
                       interval=0.002)
            delays.append(time.monotonic() - t1)
            assert t1 - t0 < 5
    finally:
        for coord, _, mirror in controllers:
            mirror.stop()
            coord.leave()
    print(f"\npolicy propagation to 2 controllers: median {statistics.median(delays) * 1000:.0f} ms, "
          f"max {max(delays) * 1000:.0f} ms over {len(delays)} revisions")
