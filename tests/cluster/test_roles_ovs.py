"""OFPT_ROLE_REQUEST against a real OVS bridge with two controllers: the generation id fences a stale master.

Two plain TCP listeners play the controllers (the messages are built by pfepo.openflow.ofmsg, the same
functions the daemon uses). Run under the shared lock: ``flock /tmp/pfepo-ovs.lock pytest -m ovs ...``.
"""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import uuid

import pytest
from os_ken.ofproto import ofproto_parser, ofproto_protocol
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from pfepo.openflow import ofmsg
from pfepo.openflow.desired import Flow
from pfepo.openflow.messages import RoleRequest
from tests.waiting import wait_until

pytestmark = pytest.mark.ovs

DP = ofproto_protocol.ProtocolDesc(ofp.OFP_VERSION)


class Conn:
    """One controller connection accepted from the switch: send os-ken messages, read parsed replies."""

    def __init__(self, listener: socket.socket):
        self.sock, _ = listener.accept()
        self.sock.settimeout(5)
        self.buf = b""
        self.xid = 100
        self.send(parser.OFPHello(DP))

    def send(self, msg) -> int:
        self.xid += 1
        msg.set_xid(self.xid)
        msg.serialize()
        self.sock.sendall(msg.buf)
        return self.xid

    def recv(self):
        while True:
            if len(self.buf) >= 8:
                version, mtype, length, xid = struct.unpack("!BBHI", self.buf[:8])
                if len(self.buf) >= length:
                    raw, self.buf = self.buf[:length], self.buf[length:]
                    return ofproto_parser.msg(DP, version, mtype, length, xid, raw)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("switch closed the connection")
            self.buf += chunk

    def reply_to(self, xid: int):
        """The reply (or error) to request ``xid``, skipping echo/hello/port-status traffic."""
        while True:
            m = self.recv()
            if isinstance(m, parser.OFPEchoRequest):
                self.send(parser.OFPEchoReply(DP, data=m.data))
            elif m.xid == xid:
                return m

    def barrier(self):
        return self.reply_to(self.send(parser.OFPBarrierRequest(DP)))


def _listener() -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    s.settimeout(15)
    return s


@pytest.fixture
def bridge():
    if shutil.which("ovs-vsctl") is None:
        pytest.skip("Open vSwitch not installed")
    name = "pfr" + uuid.uuid4().hex[:8]
    subprocess.run(["ovs-vsctl", "add-br", name, "--", "set", "bridge", name, "datapath_type=netdev",
                    "protocols=OpenFlow13", "fail-mode=secure"], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ovs-vsctl", "--if-exists", "del-br", name], check=False)


def test_master_with_newer_generation_fences_the_old_one(bridge):
    la, lb = _listener(), _listener()
    try:
        subprocess.run(["ovs-vsctl", "set-controller", bridge, f"tcp:127.0.0.1:{la.getsockname()[1]}",
                        f"tcp:127.0.0.1:{lb.getsockname()[1]}"], check=True)
        a, b = Conn(la), Conn(lb)
        # a becomes MASTER at generation 7 (say the etcd revision of its ownership key)
        rep = a.reply_to(a.send(ofmsg.role_request(DP, RoleRequest("master", 7))))
        assert ofmsg.parse_role_reply(rep) == ("master", 7)
        b_rep = b.reply_to(b.send(ofmsg.role_request(DP, RoleRequest("slave", 7))))
        assert ofmsg.parse_role_reply(b_rep) == ("slave", 7)
        # a slave's state-changing message is refused by the switch
        flow = Flow(10, (("eth_type", 0x0800),), (("output", 1),))
        err = b.reply_to(b.send(ofmsg.flow_mod(DP, flow)))
        assert isinstance(err, parser.OFPErrorMsg) and err.type == ofp.OFPET_BAD_REQUEST
        assert err.code == ofp.OFPBRC_IS_SLAVE
        # ownership moves to b at a newer generation: a is demoted by the switch itself
        rep = b.reply_to(b.send(ofmsg.role_request(DP, RoleRequest("master", 9))))
        assert ofmsg.parse_role_reply(rep) == ("master", 9)
        # the old master, still believing in generation 7, is refused as stale
        err = a.reply_to(a.send(ofmsg.role_request(DP, RoleRequest("master", 7))))
        assert isinstance(err, parser.OFPErrorMsg) and ofmsg.parse_role_error(err) == "stale"
        err = a.reply_to(a.send(ofmsg.flow_mod(DP, flow)))
        assert isinstance(err, parser.OFPErrorMsg) and err.code == ofp.OFPBRC_IS_SLAVE
        # ...while the new master's mods are accepted
        b.send(ofmsg.flow_mod(DP, flow))
        assert isinstance(b.barrier(), parser.OFPBarrierReply)
        dump = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", bridge], check=True,
                              capture_output=True, text=True).stdout
        assert "priority=10,ip actions=output:1" in dump
        # OVSDB shows the roles too (refreshed by ovs-vswitchd every few seconds)
        targets = [f"tcp:127.0.0.1:{la.getsockname()[1]}", f"tcp:127.0.0.1:{lb.getsockname()[1]}"]

        def roles() -> list[str]:
            return [subprocess.run(["ovs-vsctl", "--bare", "--columns=role", "find", "controller",
                                    f'target="{t}"'], check=True, capture_output=True, text=True).stdout.strip()
                    for t in targets]

        wait_until(lambda: roles() == ["slave", "master"], timeout=15, message="OVSDB controller roles")
    finally:
        la.close()
        lb.close()
