import pytest

from pfepo.telemetry.probes import EchoRtt, ProbeTracker, decode, encode


def test_encode_decode_roundtrip_and_foreign_payloads():
    assert decode(encode(1, 2, 3, 4, 5.5)) == (1, 2, 3, 4, 5.5)
    assert decode(b"LLDP" + b"\0" * 40) is None
    assert decode(b"PFEP") is None


def test_latency_corrected_by_half_echo_rtts_and_loss_counted():
    t = ProbeTracker(timeout_s=1.0)
    seqs = [t.next_seq("l>", 100.0) for _ in range(4)]
    # 30 ms between packet-out and packet-in, of which 10 ms (= 2 x half of 10 ms RTT) is control path.
    link, lat = t.received(seqs[0], 100.030, 0.010, 0.010)
    assert link == "l>" and abs(lat - 0.020) < 1e-9
    t.received(seqs[1], 100.030, 0.010, 0.010)
    t.received(seqs[2], 100.030, 0.010, 0.010)
    stats = t.collect(102.0)["l>"]  # the 4th never came back: timed out
    assert abs(stats.latency_ms - 20.0) < 1e-6
    assert stats.loss_pct == 25.0 and stats.sent == 4 and stats.received == 3
    assert t.collect(103.0) == {}  # reported once


def test_late_duplicate_and_unknown_probes_not_counted_as_received():
    t = ProbeTracker(timeout_s=0.5)
    s = t.next_seq("l<", 10.0)
    assert t.received(s, 11.0, 0, 0) is None  # arrived after the timeout: lost
    assert t.received(s, 11.0, 0, 0) is None  # duplicate
    assert t.received(999, 11.0, 0, 0) is None
    st = t.collect(12.0)["l<"]
    assert st.loss_pct == 100.0 and st.latency_ms is None


def test_latency_never_negative():
    t = ProbeTracker()
    s = t.next_seq("l>", 1.0)
    assert t.received(s, 1.001, 0.05, 0.05) == ("l>", 0.0)


def test_echo_rtt_smoothing():
    e = EchoRtt(alpha=0.5)
    assert e.get(1) == 0.0
    e.update(1, 0.010)
    assert e.update(1, 0.020) == 0.015


def test_probe_mac_rejects_another_key_and_tampering():
    from pfepo.telemetry.probes import verify

    frame = encode(1, 2, 3, 4, 5.5, key=b"k1")
    assert verify(frame, b"k1") == (1, 2, 3, 4, 5.5)
    assert verify(frame, b"k2") == "bad_mac"
    assert verify(frame[:8] + b"\xff" + frame[9:], b"k1") == "bad_mac"
    assert verify(frame[:20], b"k1") == "malformed"


def test_untrusted_probes_count_neither_as_latency_nor_as_loss():
    from pfepo.telemetry.probes import ProbeTracker

    t = ProbeTracker(timeout_s=1.0)
    a = t.next_seq("l>", 0.0)
    b = t.next_seq("l>", 0.0)
    t.next_seq("l>", 0.0)
    assert t.received(a, 0.002, 0.0, 0.0) == ("l>", 0.002)
    assert t.received(b, 0.4, 0.0, 0.0, trusted=False) is None  # waited in our own queues
    st = t.collect(2.0)["l>"]  # the third timed out: lost
    assert st.latency_ms == 2.0 and st.received == 1 and st.discarded == 1 and round(st.loss_pct) == 50
    # An untrusted round (controller overloaded): answered and lost probes alike are discarded.
    c = t.next_seq("l>", 3.0)
    t.next_seq("l>", 3.0)
    assert t.received(c, 3.3, 0.0, 0.0) == ("l>", pytest.approx(0.3))
    assert t.collect(5.0, trusted=False) == {}
    assert t.collect(6.0) == {}  # nothing left over to report later


def test_echo_baseline_and_excess():
    from pfepo.telemetry.probes import EchoRtt

    e = EchoRtt()
    assert e.excess(1, 0.5, 0.0) == 0.0  # no baseline yet: nothing to compare with
    e.update(1, 0.002, now=0.0)
    e.update(1, 0.150, now=1.0)  # a slow echo does not raise the baseline
    assert e.baseline(1, 1.0) == pytest.approx(0.003)
    assert e.excess(1, 0.050, 1.0) == pytest.approx(0.047)
    assert e.baseline(1, 101.0) == pytest.approx(0.103)  # creeps up: a real path change is followed


def test_latency_is_timed_from_when_the_probe_left_the_socket():
    t = ProbeTracker(timeout_s=1.0)
    s = t.next_seq("l>", 10.0)
    t.sent(s, 10.000)  # stamped into the frame as it was handed to os-ken
    t.left_socket(s, 10.006)  # os-ken's send thread got to it 6 ms later
    assert t.expects(s, "l>", 10.000)  # the frame's own stamp still identifies it
    link, lat = t.received(s, 10.007, 0.0, 0.0)
    assert link == "l>" and lat == pytest.approx(0.001)
    t.left_socket(s, 10.5)  # no longer pending: ignored
    assert t.received(s, 10.6, 0.0, 0.0) is None
