"""The lab's controller check survives a controller whose greeting is not UTF-8 (loopback only).

A listening OpenFlow controller greets every connection with a binary HELLO whose transaction id is random.
Mininet's own ``RemoteController`` checks reachability with ``telnet`` and decodes the output as strict UTF-8,
so when telnet printed a HELLO with an invalid byte sequence, the lab's set-up failed (CI, stop 37). Whether
telnet prints it is a race (it usually quits on its escape character first), so the tests check that the
lab's controller never reads the answer through the node's shell. The greeter is a plain socket on loopback
sending such a HELLO; the controller nodes are real Mininet nodes (a shell each, needs root), ended by their
own ``terminate``."""

from __future__ import annotations

import socket
import threading

import pytest

from mininet_topologies.multiregion import controller_listening, remote_controller

# OpenFlow 1.3 HELLO (version 4, type 0, length 8) with xid 0xe328a100: 0xe3 0x28 is invalid UTF-8.
HELLO = b"\x04\x00\x00\x08\xe3\x28\xa1\x00"

pytestmark = pytest.mark.ovs


@pytest.fixture
def greeter():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2.0)
                try:
                    conn.sendall(HELLO)
                    conn.recv(64)  # until the checker closes (or 2 s pass)
                except OSError:
                    pass

    threading.Thread(target=serve, daemon=True).start()
    yield srv.getsockname()[1]
    srv.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _no_shell(*args, **kwargs):
    raise AssertionError("the check read the controller's answer through the node's shell")


def test_mininets_own_check_reads_the_answer_through_the_shell(greeter):
    """Why ours exists: Mininet's check runs telnet in the node's shell and decodes what the controller sent
    (if telnet printed the HELLO before it quit, that decode raised). Fails once Mininet stops doing that."""
    from mininet.node import RemoteController

    ctl = RemoteController("c9", ip="127.0.0.1", port=greeter)
    try:
        ctl.cmd = _no_shell
        with pytest.raises(AssertionError, match="through the node's shell"):
            ctl.isListening("127.0.0.1", greeter)
    finally:
        ctl.terminate()


def test_the_labs_controller_checks_without_the_shell_and_tells_listening_from_closed(greeter):
    ctl = remote_controller()("c9", ip="127.0.0.1", port=greeter)
    try:
        ctl.cmd = _no_shell
        assert ctl.isListening("127.0.0.1", greeter)
        assert not ctl.isListening("127.0.0.1", _free_port())
    finally:
        ctl.terminate()
    assert controller_listening("127.0.0.1", greeter)
