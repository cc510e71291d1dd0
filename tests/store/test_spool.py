"""The on-disk spool: FIFO, durable across reopen, bounded with counted drops."""

from __future__ import annotations

import pytest

from pfepo.store.spool import Spool


def payload(i: int, size: int = 100) -> bytes:
    return f"{i:05d}".encode().ljust(size, b"x")


def drain(sp: Spool) -> list[int]:
    out = []
    while (item := sp.peek(max_bytes=1)) is not None:
        last, payloads, _ = item
        out += [int(p[:5]) for p in payloads]
        sp.ack(last)
    return out


def test_fifo_and_counts(tmp_path):
    sp = Spool(tmp_path / "s.sqlite", max_bytes=10_000)
    for i in range(5):
        assert sp.append(payload(i), 10)
    assert (sp.pending, sp.bytes, sp.batches) == (50, 500, 5)
    last, payloads, n = sp.peek(max_bytes=250)  # coalesces whole batches up to the byte budget
    assert [int(p[:5]) for p in payloads] == [0, 1] and n == 20
    sp.release()
    assert drain(sp) == [0, 1, 2, 3, 4]
    assert (sp.pending, sp.bytes, sp.batches, sp.dropped) == (0, 0, 0, 0)
    sp.close()


def test_survives_reopen(tmp_path):
    sp = Spool(tmp_path / "s.sqlite", max_bytes=10_000)
    for i in range(3):
        sp.append(payload(i), 7)
    sp.close()
    sp = Spool(tmp_path / "s.sqlite", max_bytes=10_000)
    assert (sp.pending, sp.bytes) == (21, 300)
    assert drain(sp) == [0, 1, 2]
    sp.close()


def test_drop_oldest(tmp_path):
    sp = Spool(tmp_path / "s.sqlite", max_bytes=350, drop="oldest")
    for i in range(6):
        assert sp.append(payload(i), 10)
    assert sp.dropped == 30 and sp.pending == 30
    assert drain(sp) == [3, 4, 5]
    sp.close()


def test_drop_newest(tmp_path):
    sp = Spool(tmp_path / "s.sqlite", max_bytes=350, drop="newest")
    accepted = [sp.append(payload(i), 10) for i in range(6)]
    assert accepted == [True, True, True, False, False, False]
    assert sp.dropped == 30
    assert drain(sp) == [0, 1, 2]
    sp.close()


def test_in_flight_head_is_never_dropped(tmp_path):
    sp = Spool(tmp_path / "s.sqlite", max_bytes=300, drop="oldest")
    for i in range(3):
        sp.append(payload(i), 1)
    last, _, _ = sp.peek(max_bytes=1)  # batch 0 is being sent
    sp.append(payload(3), 1)  # must drop batch 1, not the in-flight batch 0
    sp.ack(last)
    assert drain(sp) == [2, 3]
    assert sp.dropped == 1 and sp.pending == 0
    sp.close()


def test_batch_larger_than_spool_is_dropped(tmp_path):
    sp = Spool(tmp_path / "s.sqlite", max_bytes=50)
    assert not sp.append(payload(0), 4)
    assert sp.dropped == 4 and sp.pending == 0
    sp.close()


def test_bad_policy(tmp_path):
    with pytest.raises(ValueError):
        Spool(tmp_path / "s.sqlite", 100, drop="random")  # type: ignore[arg-type]
