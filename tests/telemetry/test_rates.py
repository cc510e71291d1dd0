from pfepo.telemetry.rates import PortCounters, RateTracker, rates

CAP = 100e6  # 100 Mbit/s


def pc(ts, rx=0, tx=0, **kw):
    return PortCounters(ts, rx_bytes=rx, tx_bytes=tx, **kw)


def test_first_sample_gives_no_rate():
    t = RateTracker()
    assert t.update("p", pc(0, 1000), CAP) is None


def test_rates_and_utilisation():
    r = rates(pc(10, rx=0, tx=0, rx_packets=0), pc(12, rx=2_500_000, tx=1_250_000, rx_packets=200), CAP)
    assert r.rx_bps == 10e6 and r.tx_bps == 5e6
    assert r.rx_pps == 100
    assert r.utilization_pct == 10.0


def test_counter_reset_gives_no_rate_then_recovers():
    t = RateTracker()
    t.update("p", pc(0, rx=10_000_000), CAP)
    assert t.update("p", pc(1, rx=500), CAP) is None  # switch restarted: counter went backwards
    r = t.update("p", pc(2, rx=1500), CAP)
    assert r is not None and r.rx_bps == 8000


def test_wrap_never_negative_or_huge():
    t = RateTracker()
    t.update("p", pc(0, rx=2**64 - 10), CAP)
    assert t.update("p", pc(1, rx=5), CAP) is None


def test_gap_and_clock_going_backwards():
    assert rates(pc(0), pc(1000, rx=10), CAP, max_gap_s=300) is None
    assert rates(pc(10), pc(10, rx=10), CAP) is None
    assert rates(pc(10), pc(9, rx=10), CAP) is None


def test_drops_and_errors_sum_directions():
    r = rates(pc(0), pc(1, rx_dropped=3, tx_dropped=2, rx_errors=1, tx_errors=1), CAP)
    assert r.drops_ps == 5 and r.errors_ps == 2
