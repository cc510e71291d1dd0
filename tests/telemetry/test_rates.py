"""Counters -> rates: the rules (no rate on a reset, wrap, gap or clock going backwards), checked on the
code the daemon runs: ``RateArrays`` over one switch's rows."""

import numpy as np

from pfepo.telemetry.rates import COUNTERS, PORT_METRICS, RateArrays, rates_array

CAP = 100e6  # 100 Mbit/s


def _row(rx=0, tx=0, rxp=0, txp=0, rxd=0, txd=0, rxe=0, txe=0):
    return [rx, tx, rxp, txp, rxd, txd, rxe, txe]


def port(t: RateArrays, ts: float, cap: float = CAP, **counters) -> dict[str, float] | None:
    """One port's reading through the tracker: its rates as a dict, or None when there is none."""
    row = np.array([[counters.get(c, 0) for c in COUNTERS]], dtype=np.uint64)
    ports, r, _dt = t.update("sw", ts, np.array([1]), row, np.array([cap]))
    return dict(zip(PORT_METRICS, r[0].tolist(), strict=True)) if len(ports) else None


def test_first_sample_gives_no_rate():
    assert port(RateArrays(), 0, rx_bytes=1000) is None


def test_rates_and_utilisation():
    t = RateArrays()
    port(t, 10)
    r = port(t, 12, rx_bytes=2_500_000, tx_bytes=1_250_000, rx_packets=200)
    assert r["rx_bps"] == 10e6 and r["tx_bps"] == 5e6
    assert r["rx_pps"] == 100
    assert r["utilization_pct"] == 10.0


def test_counter_reset_gives_no_rate_then_recovers():
    t = RateArrays()
    port(t, 0, rx_bytes=10_000_000)
    assert port(t, 1, rx_bytes=500) is None  # switch restarted: counter went backwards
    r = port(t, 2, rx_bytes=1500)
    assert r is not None and r["rx_bps"] == 8000


def test_wrap_never_negative_or_huge():
    t = RateArrays()
    port(t, 0, rx_bytes=2**64 - 10)
    assert port(t, 1, rx_bytes=5) is None


def test_gap_and_clock_going_backwards():
    for first, then in ((0, 1000), (10, 10), (10, 9)):
        t = RateArrays(max_gap_s=300)
        port(t, first)
        assert port(t, then, rx_bytes=10) is None, (first, then)


def test_drops_and_errors_sum_directions():
    t = RateArrays()
    port(t, 0)
    r = port(t, 1, rx_dropped=3, tx_dropped=2, rx_errors=1, tx_errors=1)
    assert r["drops_ps"] == 5 and r["errors_ps"] == 2


def test_rates_array_rows_are_independent_and_unmetered_ports_have_no_utilisation():
    prev = [_row(0, 0, 0, 0), _row(1000, 2000, 10, 20, 1, 2, 3, 4)]
    cur = [_row(2_500_000, 1_250_000, 200, 100), _row(3000, 2000, 30, 20, 3, 2, 3, 6)]
    ok, got = rates_array(2.0, np.array(prev, dtype=np.uint64), np.array(cur, dtype=np.uint64),
                          np.array([CAP, 0.0]))
    assert ok.all()
    assert got[0].tolist() == [10e6, 5e6, 100, 50, 0, 0, 10.0]
    assert got[1].tolist() == [8000, 0, 10, 0, 1, 1, 0.0]
    assert len(COUNTERS) == 8


def test_rates_array_masks_only_the_row_that_went_backwards():
    prev = np.array([_row(10_000_000), _row(100)], dtype=np.uint64)
    cur = np.array([_row(500), _row(200)], dtype=np.uint64)  # port 1 reset, port 2 fine
    ok, got = rates_array(1.0, prev, cur, np.array([CAP, CAP]))
    assert ok.tolist() == [False, True]
    assert got[1][0] == 800


def test_rates_array_wrap_and_bad_intervals_give_nothing():
    prev = np.array([_row(2**64 - 10)], dtype=np.uint64)
    cur = np.array([_row(5)], dtype=np.uint64)
    assert not rates_array(1.0, prev, cur, np.array([CAP]))[0].any()
    same = np.array([_row(5)], dtype=np.uint64)
    for dt in (0.0, -1.0, 1000.0):
        assert not rates_array(dt, same, same, np.array([CAP]), max_gap_s=300)[0].any()


def test_rate_arrays_first_reading_then_rates_and_port_changes():
    t = RateArrays()
    ports = np.array([1, 2, 3])
    c0 = np.array([_row(0), _row(0), _row(0)], dtype=np.uint64)
    caps = np.full(3, CAP)
    p, r, dt = t.update("sw", 0.0, ports, c0, caps)
    assert len(p) == 0 and r.shape == (0, len(PORT_METRICS))
    c1 = np.array([_row(125), _row(250), _row(375)], dtype=np.uint64)
    p, r, dt = t.update("sw", 1.0, ports, c1, caps)
    assert p.tolist() == [1, 2, 3] and r[:, 0].tolist() == [1000, 2000, 3000] and dt == 1.0
    # port 2 went away, port 7 appeared: rates for the ports seen both times only
    ports2 = np.array([1, 3, 7])
    c2 = np.array([_row(250), _row(750), _row(9)], dtype=np.uint64)
    p, r, _dt = t.update("sw", 2.0, ports2, c2, np.full(3, CAP))
    assert p.tolist() == [1, 3] and r[:, 0].tolist() == [1000, 3000]
    t.forget("sw")
    assert len(t.update("sw", 3.0, ports2, c2, np.full(3, CAP))[0]) == 0
