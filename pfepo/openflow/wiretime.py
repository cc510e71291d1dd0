"""Wire times of an OpenFlow connection: when a message left our socket and when a reply reached it.

Probe and echo timings must measure the network and the switch, not us. Every other timestamp we can take
(in the event loop, or on os-ken's receive thread after parsing) also holds the time a thread waited for
the GIL: measured on the idle Mininet lab, an idle link that pings at 0.6 ms one way read 5-10 ms through
probes and the echo round trip read 3-19 ms, while a raw socket against the same OVS read 0.4 ms.

``WireSocket`` wraps a connection's socket (os-ken reads ``datapath.socket`` afresh on every call):

- receive: ``recvmsg`` with ``SO_TIMESTAMPNS``, so ``last_rx`` is the kernel's arrival time of the last
  bytes read (for TCP, the last segment consumed), not the time a thread got to them;
- send: the wall time just before the syscall that writes each echo request and packet-out, by OpenFlow
  xid (``sendall`` on os-ken's send thread, or ``note_send`` from the I/O loop's writer, ioloop.py).

TLS sockets (``ssl.SSLSocket`` has no ``recvmsg``) are not wrapped: callers then fall back to their own
stamps, as before.
"""

from __future__ import annotations

import socket
import ssl
import struct
import time
from collections import OrderedDict

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; the control message type has the same value
_ANC_SPACE = socket.CMSG_SPACE(16)  # struct timespec: two 64-bit fields
OFPT_ECHO_REQUEST = 2
OFPT_PACKET_OUT = 13
_WATCHED = (OFPT_ECHO_REQUEST, OFPT_PACKET_OUT)
_MAX_SENT = 4096  # send times kept per connection; older ones are forgotten (their replies are long late)


class WireSocket:
    """A socket proxy that records kernel receive timestamps and per-xid send times."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self._sock = sock
        self.last_rx: float | None = None
        self._sent: OrderedDict[int, float] = OrderedDict()

    @classmethod
    def wrap(cls, sock) -> WireSocket | None:
        """The wrapper for ``sock``, or None where timestamps are unavailable (TLS, not a socket)."""
        if isinstance(sock, WireSocket):
            return sock
        if isinstance(sock, ssl.SSLSocket) or not isinstance(sock, socket.socket):
            return None
        try:
            return cls(sock)
        except OSError:
            return None

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        data, anc, _flags, _addr = self._sock.recvmsg(bufsize, _ANC_SPACE, flags)
        for level, kind, raw in anc:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(raw) >= 16:
                sec, nsec = struct.unpack("qq", raw[:16])
                self.last_rx = sec + nsec * 1e-9
        return data

    def note_send(self, buf) -> None:
        """``buf`` (one whole OpenFlow message) is about to be written: keep its time if it is timed."""
        if len(buf) >= 8 and buf[1] in _WATCHED:
            (xid,) = struct.unpack_from("!I", buf, 4)
            self._sent[xid] = time.time()
            if len(self._sent) > _MAX_SENT:
                self._sent.popitem(last=False)

    def sendall(self, buf, flags: int = 0) -> None:
        self.note_send(buf)
        self._sock.sendall(buf, flags)

    def sent_at(self, xid: int | None) -> float | None:
        """When the message with ``xid`` left our socket (once: the entry is forgotten), None if unknown."""
        return None if xid is None else self._sent.pop(xid, None)

    def __getattr__(self, name: str):
        return getattr(self._sock, name)
