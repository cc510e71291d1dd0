"""The one-hop rule on the 3-region lab's desired state, followed packet by packet in fake switches.

Fake switches (tests/openflow/fakeswitch.py) because this is a millisecond check of the tables we compute;
tests/cluster/test_regions3_mininet.py runs the same tables on real OVS.
"""

from __future__ import annotations

import itertools

import pytest

from mininet_topologies.regions3 import Regions3
from pfepo.config import PfepoConfig
from pfepo.openflow.desired import switch_state
from pfepo.openflow.reconcile import flow_key
from pfepo.yamlconf import ConfigError
from tests.openflow.fakeswitch import FakeSwitch

SPEC = Regions3()
VIP = {"eth_type": 0x0800, "ip_proto": 6, "ipv4_dst": SPEC.vip, "tcp_dst": 80}


def _switches(cfg, weights):
    out = {}
    for name in SPEC.switches():
        st = switch_state(cfg, name, weights)
        sw = FakeSwitch(SPEC.dpid(name), {p: True for p in (1, 2, 3, 10, 11, 12, 21)})
        sw.groups = dict(st.groups)
        sw.flows = {flow_key(f): f for f in st.flows}
        out[name] = sw
    return out


@pytest.mark.parametrize("controller", [0, 1, 2])
def test_every_controller_computes_the_same_tables(controller):
    a = PfepoConfig.model_validate(SPEC.config(controller))
    b = PfepoConfig.model_validate(SPEC.config((controller + 1) % 3))
    w = {"web": {"eu": 10, "us": 20, "ap": 34}}
    for name in SPEC.switches():
        assert switch_state(a, name, w) == switch_state(b, name, w), name


def test_a_shifted_request_crosses_one_link_and_its_reply_comes_back():
    cfg = PfepoConfig.model_validate(SPEC.config(0))
    sw = _switches(cfg, {"web": {"eu": 0, "us": 0, "ap": 64}})
    c_eu, c_ap = sw[SPEC.client_switch(0)], sw[SPEC.client_switch(2)]
    req = {**VIP, "in_port": 21, "ipv4_src": "10.0.11.1", "tcp_src": 40000}
    path = c_eu.forward(req, choose=lambda g, bs: next(b for b in bs if b.label == "ap"))
    assert path.outputs == [SPEC.port_to(0, 2)]  # eu's client switch -> the link to ap (port 12)
    at_ap = {**req, "in_port": 10}  # arrives on ap's client switch from eu
    path = c_ap.forward(at_ap)
    assert path.outputs == [1] and not path.groups  # delivered to ap's region switch, never re-steered
    reply = {"eth_type": 0x0800, "ip_proto": 6, "ipv4_src": SPEC.vip, "tcp_src": 80, "ipv4_dst": "10.0.11.1",
             "tcp_dst": 40000, "in_port": 1}
    assert c_ap.forward(reply).outputs == [10]  # back the link it came from
    assert c_eu.forward({**reply, "in_port": 12}).outputs == ["normal"]  # our own client's reply passes


def test_nothing_that_arrives_from_another_region_leaves_toward_a_third():
    cfg = PfepoConfig.model_validate(SPEC.config(1))
    sw = _switches(cfg, {"web": {"eu": 21, "us": 21, "ap": 22}})
    packets = [VIP, {"eth_type": 0x0806, "eth_dst": "ff:ff:ff:ff:ff:ff"}, {"eth_type": 0x0800, "ipv4_dst": "10.0.1.1"},
               {"eth_type": 0x0800, "ip_proto": 6, "ipv4_src": SPEC.vip, "tcp_src": 80}]
    for (i, name), pkt in itertools.product(enumerate(SPEC.client_switch(k) for k in range(3)), packets):
        for j in (j for j in range(3) if j != i):
            path = sw[name].forward({**pkt, "in_port": SPEC.port_to(i, j)})
            assert not path.groups, (name, pkt)
            assert set(path.outputs) <= {1}, (name, pkt, path.outputs)  # local region or dropped, never NORMAL


def test_one_hop_flows_read_back_equal():
    """What OVS reports back for these flows is what we want (else every poll would re-add them)."""
    from pfepo.openflow import ofmsg
    from pfepo.openflow.reconcile import flow_changes
    from tests.openflow.test_ofmsg import FakeDatapath, _roundtrip_flow_stats

    cfg = PfepoConfig.model_validate(SPEC.config(0))
    dp = FakeDatapath()
    for name in SPEC.switches():
        want = switch_state(cfg, name, {"web": {"eu": 21, "us": 21, "ap": 22}}).flows
        have = ofmsg.parse_flow_stats([_roundtrip_flow_stats(ofmsg.flow_mod(dp, f)) for f in want])
        assert flow_changes(want, have) == [], name


def test_one_hop_needs_affinity(tmp_path):
    import yaml

    from pfepo.config import load_config

    doc = SPEC.config(0)
    doc["openflow"]["affinity"] = False
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match="inter_region_ports"):
        load_config(p)
