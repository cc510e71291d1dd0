"""The relay's per-direction scheduling, without sockets: loss, FIFO under jitter, rate, overflow."""

from __future__ import annotations

import random

import pytest

from pfepo_lab.impair.relay import Direction, Impairment


class FakeSocket:
    def __init__(self, fail: bool = False):
        self.sent: list[bytes] = []
        self.fail = fail

    def send(self, frame) -> int:
        if self.fail:
            raise OSError(100, "Network is down")
        self.sent.append(bytes(frame))
        return len(frame)


def direction(**imp) -> tuple[Direction, FakeSocket]:
    tx = FakeSocket()
    d = Direction("a2b", rx=None, tx=tx, imp=Impairment(**imp).validate(), rng=random.Random(7))
    return d, tx


def test_plain_wire_sends_at_once():
    d, tx = direction()
    d._accept(b"x" * 100, now=10.0)
    assert tx.sent == [b"x" * 100] and not d._queue


def test_delay_holds_frames_until_due():
    d, tx = direction(delay_ms=20)
    d._accept(b"a", now=1.0)
    d._flush_due(1.0199)
    assert tx.sent == []
    d._flush_due(1.0201)
    assert tx.sent == [b"a"]


def test_jitter_never_reorders():
    d, tx = direction(delay_ms=10, jitter_ms=9)
    for i in range(500):
        d._accept(i.to_bytes(2, "big"), now=i * 0.0001)
    dues = [due for due, _ in d._queue]
    assert dues == sorted(dues) and max(dues) - min(dues) > 0.04
    d._flush_due(100.0)
    assert [int.from_bytes(f, "big") for f in tx.sent] == list(range(500))


def test_loss_fraction():
    d, tx = direction(loss_pct=25)
    for _ in range(4000):
        d._accept(b"f", now=0.0)
    assert 0.22 < d.counters.lost / 4000 < 0.28
    assert len(tx.sent) + d.counters.lost == 4000


def test_rate_spaces_frames_and_tail_drops_beyond_queue():
    d, tx = direction(rate_mbit=8, queue_ms=10)  # 1 byte/us: a 1000-byte frame takes 1 ms
    for _ in range(30):
        d._accept(b"z" * 1000, now=0.0)
    assert d.counters.overflow == 30 - 11  # 0..10 ms of backlog accepted
    dues = [due for due, _ in d._queue]
    assert dues[1] - dues[0] == pytest.approx(0.001)


def test_send_errors_are_counted_not_raised():
    d = Direction("a2b", rx=None, tx=FakeSocket(fail=True))
    d._accept(b"x", now=0.0)
    assert d.counters.tx_errors == 1 and d.counters.tx == 0


@pytest.mark.parametrize("bad", [{"delay_ms": -1}, {"loss_pct": 101}, {"rate_mbit": -2}, {"jitter_ms": 1e6}])
def test_invalid_impairments(bad):
    with pytest.raises(ValueError):
        Impairment(**bad).validate()
