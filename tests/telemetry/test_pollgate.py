from pfepo.telemetry.pollgate import PollGate


def test_a_switch_is_not_asked_again_until_its_reply_was_handled():
    g = PollGate(interval_s=1.0)
    assert g.due(1, 0.0)
    g.sent(1, 0.0)
    assert not g.due(1, 1.0) and not g.due(1, 2.5)  # reply still outstanding: no second request
    assert g.skipped == 2
    g.handled(1, 2.6)
    assert g.due(1, 2.6)
    g.sent(1, 2.6)
    assert g.effective_interval_s() == (2.6, 2.6)
    assert g.overloaded()  # polls stretched to 2.6x the interval


def test_interval_is_kept_when_replies_are_handled_in_time_and_not_overloaded():
    g = PollGate(interval_s=1.0)
    t = 0.0
    for _ in range(10):
        assert g.due(7, t)
        g.sent(7, t)
        assert not g.due(7, t + 0.5)
        g.handled(7, t + 0.01)
        assert not g.due(7, t + 0.5)  # handled, but the interval has not passed
        t += 1.0
    med, mx = g.effective_interval_s()
    assert med == 1.0 and mx == 1.0 and not g.overloaded()
    assert g.status()["reply_lag_p50_s"] == 0.01


def test_a_lost_reply_frees_the_switch_after_stale_after_s_and_forget_resets():
    g = PollGate(interval_s=1.0, stale_after_s=5.0)
    g.sent(3, 0.0)
    assert not g.due(3, 4.9)
    assert g.due(3, 5.1) and g.stale_total == 1
    g.sent(3, 5.1)
    g.forget(3)
    assert g.due(3, 5.2) and g.outstanding() == 0
