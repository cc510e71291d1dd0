"""WireSocket over a real loopback TCP connection (no fake: the kernel's timestamps are the point)."""

import socket
import struct
import time

from pfepo.openflow.wiretime import WireSocket


def _pair():
    srv = socket.create_server(("127.0.0.1", 0))
    a = socket.create_connection(srv.getsockname())
    b, _ = srv.accept()
    srv.close()
    return a, b


def _of(msg_type: int, xid: int, body: bytes = b"") -> bytes:
    return struct.pack("!BBHI", 4, msg_type, 8 + len(body), xid) + body


def _stamps_flowing(wire: WireSocket, b: socket.socket) -> None:
    """Wait until the kernel stamps arrivals: when no other socket on the machine had timestamps on, the
    kernel turns them on in deferred work, so the first segments after SO_TIMESTAMPNS may come unstamped
    (callers then fall back to their own clock; seen once in CI)."""
    deadline = time.monotonic() + 5
    while True:
        b.sendall(_of(2, 1))
        assert wire.recv(8) == _of(2, 1)
        if wire.last_rx is not None:
            return
        assert time.monotonic() < deadline, "the kernel never stamped an arrival"
        time.sleep(0.01)


def test_receive_time_is_the_kernel_arrival_not_when_we_read():
    a, b = _pair()
    try:
        wire = WireSocket.wrap(a)
        _stamps_flowing(wire, b)
        sent = time.time()
        b.sendall(_of(3, 7))
        time.sleep(0.2)  # deliberately late reader: the stamp must not include this wait
        data = wire.recv(8)
        assert data == _of(3, 7)
        assert wire.last_rx is not None
        assert sent - 0.01 <= wire.last_rx <= sent + 0.1, (sent, wire.last_rx)
    finally:
        a.close()
        b.close()


def test_send_times_are_kept_per_xid_for_echoes_and_packet_outs_only():
    a, b = _pair()
    try:
        wire = WireSocket.wrap(a)
        before = time.time()
        wire.sendall(_of(2, 11, b"x" * 8))  # echo request
        wire.sendall(_of(13, 12, b"y" * 16))  # packet-out
        wire.sendall(_of(18, 13))  # multipart request: not watched
        after = time.time()
        assert before <= wire.sent_at(11) <= after
        assert wire.sent_at(11) is None  # once
        assert before <= wire.sent_at(12) <= after
        assert wire.sent_at(13) is None
        assert wire.sent_at(None) is None
        got = b""
        while len(got) < 8 * 3 + 24:
            got += b.recv(100)
        assert got == _of(2, 11, b"x" * 8) + _of(13, 12, b"y" * 16) + _of(18, 13)  # bytes unchanged
        assert wire.getsockname() == a.getsockname()  # everything else is the socket's own
        assert WireSocket.wrap(wire) is wire
    finally:
        a.close()
        b.close()


def test_what_cannot_be_timestamped_is_left_alone():
    assert WireSocket.wrap(object()) is None
