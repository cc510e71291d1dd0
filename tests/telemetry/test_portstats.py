"""A PortStats reply (packed by a fake switch, parsed by os-ken) -> one columnar batch of port rates."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from os_ken.ofproto import ofproto_parser
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from pfepo.config import PfepoConfig
from pfepo.telemetry.ports import PortNames
from pfepo.telemetry.portstats import PortStatsBatcher, counters_array
from pfepo.telemetry.rates import PORT_METRICS
from pfepo_lab.bench._fakeswitches import _MP_REPLY, HEADER, _msg

CFG = PfepoConfig.model_validate({
    "switches": [{"name": "c0", "dpid": 1}, {"name": "r1", "dpid": 2}],
    "regions": [{"name": "eu", "switch": "r1", "uplink": {"switch": "c0", "port": 1, "capacity_mbps": 100},
                 "endpoints": [{"name": "eu-1", "ip": "10.0.1.1", "mac": "00:00:00:00:01:01", "port": 2}]}],
})


def reply_body(ports: dict[int, int]) -> list:
    """A real PortStatsReply body: packed with ofproto_v1_3 structs, parsed by os-ken's parser."""
    import struct

    entries = b"".join(struct.pack(ofp.OFP_PORT_STATS_PACK_STR, p, rx // 100, 0, rx, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0)
                       for p, rx in ports.items())
    raw = _msg(ofp.OFPT_MULTIPART_REPLY, 7, _MP_REPLY.pack(ofp.OFPMP_PORT_STATS, 0) + entries)
    dp = SimpleNamespace(ofproto=ofp, ofproto_parser=parser, id=1)
    version, mtype, length, xid = HEADER.unpack_from(raw)
    return ofproto_parser.msg(dp, version, mtype, length, xid, raw).body


def test_counters_array_skips_reserved_ports():
    body = reply_body({1: 10, 2: 20, ofp.OFPP_LOCAL: 30})
    ports, counters = counters_array(body)
    assert ports.tolist() == [1, 2] and counters.dtype == np.uint64 and counters[:, 0].tolist() == [10, 20]


def test_reply_to_batch_names_ports_and_computes_rates():
    b = PortStatsBatcher(CFG, PortNames(CFG))
    assert b.reply(1, "c0", 100.0, reply_body({1: 0, 5: 0})) is None  # first reading
    got = b.reply(1, "c0", 102.0, reply_body({1: 2_500_000, 5: 250}))
    assert got is not None and got.interval_s == 2.0 and got.ports.tolist() == [1, 5]
    batch = got.batch
    assert batch.metrics == PORT_METRICS and batch.subjects == ("uplink:eu", "c0:5")
    assert dict(batch.tags[0])["region"] == "eu" and dict(batch.tags[1])["kind"] == "port"
    assert batch.values[0, 0] == 10e6 and batch.values[0, 6] == 10.0  # 10 Mbit/s of a 100 Mbit/s uplink
    assert batch.values[1, 0] == 1000 and batch.values[1, 6] == pytest.approx(1e-4)  # of the default 1 Gbit/s
    pr = got.port_rates()
    assert pr[1].rx_bps == 10e6 and pr[1].interval_s == 2.0 and pr[5].utilization_pct == batch.values[1, 6]


def test_counters_array_takes_the_structured_array_the_adapter_parses():
    import struct

    from pfepo.openflow.ofmsg import PORT_STATS_DTYPE

    raw = b"".join(struct.pack(ofp.OFP_PORT_STATS_PACK_STR, p, p, 2 * p, 10 * p, 20 * p, 3, 4, 5, 6, 0, 0, 0, 0, 1, 0)
                   for p in (1, 2, ofp.OFPP_LOCAL))
    arr = np.frombuffer(raw, PORT_STATS_DTYPE)
    ports, counters = counters_array(arr)
    objs = counters_array(reply_body({1: 0, 2: 0}))  # same columns as from os-ken's objects
    assert ports.tolist() == [1, 2] and objs[0].tolist() == [1, 2]
    # COUNTERS order: rx_bytes, tx_bytes, rx_packets, tx_packets, rx/tx dropped, rx/tx errors
    assert counters.tolist() == [[10, 20, 1, 2, 3, 4, 5, 6], [20, 40, 2, 4, 3, 4, 5, 6]]
    assert counters.dtype == np.uint64 and objs[1].dtype == np.uint64
