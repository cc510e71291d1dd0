"""One selector thread for every switch connection, in place of os-ken's two threads per connection.

os-ken's native hub gives each switch connection a receive thread and a send thread. At 1,000 switches
that is 2,000 threads sharing one GIL, and a PortStatus waited for it three times (the client-side
switch's receive thread, the event thread, its send thread), each behind every other runnable thread;
a garbage collection that holds the GIL was stretched by every one of them asking for it (docs/scale.md).

Here, in this process only (``install``), os-ken's listener accepts plain-TCP connections into one
``IoLoop`` thread:

- **receive**: the loop reads whatever a readable socket holds (up to ``READ_SIZE``; os-ken read each
  message in two ``recv`` calls), splits it into OpenFlow messages and dispatches each exactly as os-ken's
  ``Datapath._recv_loop`` does: the app's ``_send_event`` (our two-lane queue) and os-ken's own
  ``ofp_handler`` handlers (hello, features, echo) on this thread. Each round reads every ready socket
  first; a connection whose bytes hold a whole PortStatus is dispatched at once, the others after;
- **send**: ``Datapath.send`` writes to the non-blocking socket at once, on the caller's thread (the app's
  event thread for a GroupMod): no hand-off to a send thread. What the kernel does not take waits in the
  connection's buffer and the loop writes it when the socket is writable, in order.
- ``_send_q_sem``, which ``PfepoApp._flush`` probes to never block, says "room" while the connection's
  unsent bytes are under ``SEND_BUFFER_MAX``.

A connection that fails or sends a message os-ken cannot parse is closed as os-ken closes it (state
DEAD, socket shut). TLS connections keep os-ken's own threads (a non-blocking TLS socket is not worth it
here). Probe and echo send times are still stamped right before the syscall (``WireSocket.note_send``).
"""

from __future__ import annotations

import collections
import logging
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable

from os_ken.base import app_manager  # noqa: F401 - os-ken's own import order (controller <-> app_manager)
from os_ken.controller import controller as oscontroller
from os_ken.controller import ofp_event
from os_ken.controller.handler import DEAD_DISPATCHER
from os_ken.lib import hub
from os_ken.ofproto import ofproto_parser

from pfepo.openflow.wiretime import WireSocket

log = logging.getLogger("pfepo.openflow.ioloop")

READ_SIZE = 256 * 1024  # bytes per recv: a whole burst of replies in one syscall and one GIL round trip
SEND_BUFFER_MAX = 1 << 20  # unsent bytes per connection before the app is told "full" (it keeps its outbox)
_HEADER = struct.Struct("!BBHI")  # version, type, length, xid
_R, _W = selectors.EVENT_READ, selectors.EVENT_WRITE
OFPT_PORT_STATUS = 12  # the same in OpenFlow 1.0-1.5
LOOK_EVERY_S = 0.002  # while dispatching a round, look for newly readable sockets (a PortStatus) this often


class _Room:
    """Stands in for os-ken's send-queue semaphore: ``PfepoApp._flush`` acquires it without blocking to ask
    whether the connection takes more; here that is "unsent bytes under SEND_BUFFER_MAX"."""

    def __init__(self, dp: LoopDatapath):
        self._dp = dp

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        return self._dp.unsent < SEND_BUFFER_MAX

    def release(self) -> None:
        pass


class LoopDatapath(oscontroller.Datapath):
    """An os-ken Datapath whose socket is served by the IoLoop: no threads of its own."""

    def __init__(self, sock: socket.socket, address, loop: IoLoop):
        super().__init__(sock, address)  # TCP_NODELAY, xid, state HANDSHAKE (an event, as in os-ken)
        sock.setblocking(False)
        self.raw = sock  # self.socket may become a WireSocket proxy (app._features); the fd stays this one
        self.loop = loop
        self.unsent = 0
        self.rbuf = bytearray()
        self._out: collections.deque = collections.deque()  # (bytes or view, whole message?) not yet written
        self._out_lock = threading.Lock()
        self._close_after = False
        self._send_q_sem = _Room(self)

    def send(self, buf, close_socket: bool = False) -> bool:
        """Write now from the calling thread; what the kernel does not take waits for the loop. Never blocks."""
        with self._out_lock:
            if self.send_q is None:  # closed
                return False
            if self._out:
                self._out.append((buf, True))
                self.unsent += len(buf)
            else:
                sent = self._write(buf, True)
                if sent < len(buf):
                    self._out.append((memoryview(buf)[sent:], False))
                    self.unsent += len(buf) - sent
                    self.loop.call(self.loop.want_write, self)
            if close_socket:
                self._close_after = True
                if not self._out:
                    self._close_write()
        return True

    def _write(self, buf, whole: bool) -> int:
        """One non-blocking send; bytes taken. A dead socket takes everything (the loop sees it closed)."""
        sock = self.socket
        if whole and isinstance(sock, WireSocket):
            sock.note_send(buf)  # probe/echo send time, right before the syscall
        try:
            return self.raw.send(buf)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError:
            return len(buf)

    def drain(self) -> bool:
        """Loop thread, socket writable: write queued bytes in order; True when nothing is left."""
        with self._out_lock:
            while self._out:
                buf, whole = self._out[0]
                sent = self._write(buf, whole)
                self.unsent -= sent
                if sent < len(buf):
                    self._out[0] = (memoryview(buf)[sent:], False)
                    return False
                self._out.popleft()
            if self._close_after:
                self._close_write()
            return True

    def serve(self):  # pragma: no cover - os-ken's threaded path is never taken for a LoopDatapath
        raise RuntimeError("a LoopDatapath is served by its IoLoop")

    def finish(self) -> None:
        """The connection ended: state DEAD (os-ken's event, the app forgets the switch), socket closed."""
        with self._out_lock:
            self.send_q = None
            self._out.clear()
            self.unsent = 0
        try:
            self.close()
        finally:
            try:
                self.raw.close()
            except OSError:
                pass
            self.is_active = False


class IoLoop:
    """The selector thread: accepts handed-over sockets, reads and dispatches, writes what senders left."""

    def __init__(self) -> None:
        self.sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.sel.register(self._wake_r, _R, None)
        self.prio_sel = selectors.DefaultSelector()  # the priority switches' sockets only (set_priority)
        self._prio: set[LoopDatapath] = set()
        self._calls: collections.deque[tuple[Callable, tuple]] = collections.deque()
        self._stop = False
        self.connections: set[LoopDatapath] = set()
        self.dropped = 0  # connections closed on an error
        self.rounds: collections.deque = collections.deque(maxlen=500)  # (wall s, CPU s) per round's work
        self.thread = threading.Thread(target=self._run, name="pfepo-openflow-io", daemon=True)
        self.thread.start()

    # --- any thread ------------------------------------------------------------------------------------
    def call(self, fn: Callable, *args) -> None:
        """Run ``fn(*args)`` on the loop thread (the selector is only touched there)."""
        if threading.current_thread() is self.thread:
            fn(*args)
            return
        self._calls.append((fn, args))
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, InterruptedError):
            pass  # the wake-up socket is full: the loop is being woken anyway

    def adopt(self, sock: socket.socket, address) -> LoopDatapath:
        """A new switch connection (listener thread): say hello as os-ken does and serve it from the loop."""
        dp = LoopDatapath(sock, address, self)
        dp.send_msg(dp.ofproto_parser.OFPHello(dp))
        if dp.max_unreplied_echo_requests:  # os-ken's optional liveness echo keeps its own thread
            hub.spawn(dp._echo_request_loop)
        self.call(self._register, dp)
        return dp

    def stop(self) -> None:
        self._stop = True
        self.call(lambda: None)
        self.thread.join(5)

    # --- loop thread -----------------------------------------------------------------------------------
    def _register(self, dp: LoopDatapath) -> None:
        self.connections.add(dp)
        self.sel.register(dp.raw, _R | (_W if dp.unsent else 0), dp)

    def want_write(self, dp: LoopDatapath) -> None:
        if dp in self.connections:
            self.sel.modify(dp.raw, _R | _W, dp)

    def _run(self) -> None:
        while not self._stop:
            ready = self.sel.select()
            started, cpu = time.perf_counter(), time.thread_time()
            filled: collections.deque[LoopDatapath] = collections.deque()
            waiting: set[LoopDatapath] = set()
            # First every socket's bytes (syscalls only), then the messages. Failover first: the switches
            # whose ports drive failover (``set_priority``) are read first, and a connection whose bytes hold
            # a PortStatus is dispatched as soon as it was read, before the other sockets of this round are
            # read and before their stats replies are parsed (its own messages stay in order).
            ready.sort(key=lambda km: km[0].data not in self._prio)
            look = time.perf_counter() + LOOK_EVERY_S
            for key, mask in ready:
                self._read(key, mask, filled, waiting)
                if time.perf_counter() >= look:
                    # Each recv gives the GIL away, and under load the I/O thread waits up to a switch
                    # interval to get it back: reading hundreds of sockets took tens of ms (35 ms at 1,000
                    # switches, 22:58 UTC). The priority switches are looked at again meanwhile.
                    self._look(filled, waiting, everything=False)
                    look = time.perf_counter() + LOOK_EVERY_S
            while filled:
                dp = filled.popleft()
                waiting.discard(dp)
                if dp in self.connections:
                    self._guard(dp, self._dispatch_all, dp)
                if filled and time.perf_counter() >= look:
                    # Failover first mid-round too: parsing 1,000 switches' replies took up to 94 ms of CPU,
                    # and a PortStatus that arrived meanwhile waited for the next round. Look again
                    # (never blocking) every LOOK_EVERY_S; what is new joins this round's queue.
                    self._look(filled, waiting, everything=True)
                    look = time.perf_counter() + LOOK_EVERY_S
            self.rounds.append((time.perf_counter() - started, time.thread_time() - cpu))
        for dp in list(self.connections):  # stopped: close what is left (unreachable code before)
            self._close(dp)
        self.sel.close()
        self.prio_sel.close()
        self._wake_r.close()
        self._wake_w.close()

    def _look(self, filled: collections.deque, waiting: set, everything: bool) -> None:
        """Never blocking: read the priority switches that have bytes, then (``everything``) any socket."""
        if self._prio:
            for key, _mask in self.prio_sel.select(0):
                self._read(key, _R, filled, waiting)
        if everything:
            for key, mask in self.sel.select(0):
                self._read(key, mask, filled, waiting)

    def _read(self, key, mask: int, filled: collections.deque, waiting: set) -> None:
        """One ready socket: read it; dispatch at once if it holds a PortStatus, else queue it for this round."""
        dp = key.data
        if dp is None:
            self._wakeup()
        elif dp in self.connections and self._guard(dp, self._io, dp, mask):
            if dp.id in _priority and dp not in self._prio:  # its dpid is known once it spoke (features)
                self._prio.add(dp)
                self.prio_sel.register(dp.raw, _R, dp)
            if _has_port_status(dp.rbuf):
                self._guard(dp, self._dispatch_all, dp)
            elif dp not in waiting:
                waiting.add(dp)
                filled.append(dp)

    def _guard(self, dp: LoopDatapath, fn: Callable, *args) -> bool:
        """``fn(*args)`` for one connection; an exception closes only that connection (as os-ken does)."""
        try:
            return bool(fn(*args))
        except Exception:
            self.dropped += 1
            log.exception("switch connection %s (dpid=%s) failed: closed", dp.address, dp.id)
            self._close(dp)
            return False

    def _io(self, dp: LoopDatapath, mask: int) -> bool:
        """Write what waits, read what came; True if there are bytes to dispatch."""
        if mask & _W and dp.drain():
            self.sel.modify(dp.raw, _R, dp)
        return bool(mask & _R) and self._fill(dp)

    def _wakeup(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        while self._calls:
            fn, args = self._calls.popleft()
            try:
                fn(*args)
            except Exception:
                log.exception("I/O loop call %s failed", getattr(fn, "__name__", fn))

    def _close(self, dp: LoopDatapath) -> None:
        if dp not in self.connections:
            return
        self.connections.discard(dp)
        try:
            self.sel.unregister(dp.raw)
        except (KeyError, ValueError, OSError):
            pass
        if dp in self._prio:
            self._prio.discard(dp)
            try:
                self.prio_sel.unregister(dp.raw)
            except (KeyError, ValueError, OSError):
                pass
        dp.finish()

    def _fill(self, dp: LoopDatapath) -> bool:
        """Read what the socket holds into the connection's buffer; False when it closed or had nothing."""
        try:
            data = dp.socket.recv(READ_SIZE)  # a WireSocket after features: kernel arrival time in last_rx
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            data = b""
        if not data:
            self._close(dp)
            return False
        dp.rbuf += data
        return True

    def _dispatch_all(self, dp: LoopDatapath) -> None:
        """Dispatch every whole message in the buffer, in order; keep a partial one for the next read."""
        buf = dp.rbuf
        end, off = len(buf), 0
        while end - off >= 8:
            version, msg_type, msg_len, xid = _HEADER.unpack_from(buf, off)
            msg_len = max(msg_len, 8)  # os-ken's "someone isn't playing nicely" rule
            if end - off < msg_len:
                break
            raw = buf[off:off + msg_len]  # a copy, as os-ken passes it
            off += msg_len
            self._dispatch(dp, version, msg_type, msg_len, xid, raw)
            if dp.state == DEAD_DISPATCHER:
                break
        del buf[:off]
        if dp.state == DEAD_DISPATCHER:
            self._close(dp)

    @staticmethod
    def _dispatch(dp: LoopDatapath, version: int, msg_type: int, msg_len: int, xid: int, raw: bytearray) -> None:
        """What os-ken's Datapath._recv_loop does with one message."""
        msg = ofproto_parser.msg(dp, version, msg_type, msg_len, xid, raw)
        if not msg:
            return
        ev = ofp_event.ofp_msg_to_ev(msg)
        brick = dp.ofp_brick
        if brick is None:
            return
        brick.send_event_to_observers(ev, dp.state)
        for handler in brick.get_handlers(ev):
            if dp.state in handler.callers[ev.__class__].dispatchers:
                handler(ev)


def _has_port_status(buf: bytearray) -> bool:
    """Whether a whole PortStatus message waits in ``buf`` (headers only, nothing parsed)."""
    end, off = len(buf), 0
    while end - off >= 8:
        _v, msg_type, msg_len, _x = _HEADER.unpack_from(buf, off)
        if end - off < max(msg_len, 8):
            return False
        if msg_type == OFPT_PORT_STATUS:
            return True
        off += max(msg_len, 8)
    return False


class LoopStreamServer(hub.StreamServer):
    """os-ken's OpenFlow listener, handing plain-TCP connections to the shared IoLoop (no thread per
    connection); a TLS listener keeps os-ken's threads."""

    def __init__(self, listen_info, handle=None, backlog=None, spawn="default", **ssl_args):
        super().__init__(listen_info, handle, backlog, spawn, **ssl_args)
        self.tls = bool(ssl_args)

    def serve_forever(self):
        if self.tls:
            return super().serve_forever()
        loop = shared_loop()
        while True:
            sock, addr = self.server.accept()
            try:
                loop.adopt(sock, addr)
            except Exception:
                log.exception("switch connection from %s could not be set up", addr)
                sock.close()


_loop: IoLoop | None = None
_loop_lock = threading.Lock()


def shared_loop() -> IoLoop:
    global _loop
    with _loop_lock:
        if _loop is None or not _loop.thread.is_alive():
            _loop = IoLoop()
        return _loop


_priority: frozenset[int] = frozenset()


def set_priority(dpids) -> None:
    """The switches whose port events drive failover (a region's uplink switch, its region switch): their
    sockets are read first in every round, and looked at again every LOOK_EVERY_S while a round goes on."""
    global _priority
    _priority = frozenset(dpids)


def current() -> IoLoop | None:
    """The shared loop if one runs (None before the first switch connection was accepted)."""
    return _loop


def install() -> None:
    """Serve os-ken's OpenFlow listener from the IoLoop, in this process. Idempotent; must run before
    os-ken's ``ofp_handler`` starts its listener (PfepoApp.__init__ does)."""
    oscontroller.StreamServer = LoopStreamServer
