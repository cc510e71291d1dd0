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


def _run_load(g: PollGate, cores: float, lag_s: float, seconds: int, t0: float = 0.0, cpu0: float = 0.0):
    """Feed ``seconds`` one-second intervals at ``cores`` of CPU and wake lags of ``lag_s``."""
    t, cpu = t0, cpu0
    for _ in range(seconds):
        t += 1.0
        cpu += cores
        g.load(t, cpu, [lag_s] * 10)
    return t, cpu


def test_cpu_over_budget_stretches_the_interval_and_under_it_relaxes_back():
    g = PollGate(interval_s=1.0, cpu_budget=0.7)
    g.load(0.0, 0.0)
    t, cpu = _run_load(g, 1.05, 0.0, 3)  # 1.5x the budget: stretched, by at most 1.5x per interval
    assert g.stretch == 1.5 ** 3 and g.overloaded()
    assert g.status()["cpu_cores"] == 1.05 and g.status()["stretch"] == round(1.5 ** 3, 3)
    g.sent(1, t)
    g.handled(1, t)
    assert not g.due(1, t + 1.0)  # one configured interval is not enough while stretched
    assert g.due(1, t + 0.95 * 1.5 ** 3)
    t, cpu = _run_load(g, 0.65, 0.0, 2, t, cpu)  # between 85 % and 100 % of the budget: held
    assert g.stretch == 1.5 ** 3
    _run_load(g, 0.2, 0.0, 8, t, cpu)  # well under: back to the configured interval
    assert g.stretch == 1.0 and not g.overloaded()


def test_wake_lag_is_reported_but_only_cpu_stretches():
    g = PollGate(interval_s=1.0, cpu_budget=0.7)
    g.load(0.0, 0.0)
    t, cpu = _run_load(g, 0.5, 0.2, 5)  # a busy machine, ready threads wait: the daemon's own CPU decides
    assert g.stretch == 1.0 and g.status()["wake_lag_p90_s"] == 0.2
    _run_load(g, 0.84, 0.0, 1, t, cpu)
    assert g.stretch == 1.2


def test_stretch_is_bounded():
    g = PollGate(interval_s=1.0, cpu_budget=0.7, max_stretch=30.0)
    g.load(0.0, 0.0)
    _run_load(g, 3.0, 1.0, 50)
    assert g.stretch == 30.0


def test_history_room_counts_the_writer_queue_and_the_replies_already_asked_for():
    g = PollGate(interval_s=1.0)
    assert g.history_room() is None  # no history gate until the writer is reported
    g.history(queued=40_000, limit=100_000)
    assert g.history_room() is None  # a reply's size is not known yet: only the per-tick cap applies
    g.reply(336)
    for d in range(50):
        g.sent(d, 0.0)
    # 100k - 40k queued - 50 outstanding x 336 = 43,200 samples: 128 more replies
    assert g.in_flight() == 50 * 336 and g.history_room() == 128
    g.history(queued=90_000, limit=100_000)
    assert g.history_room() == 0


def test_polls_that_history_cannot_take_wait_for_a_later_tick_longest_waiting_first():
    g = PollGate(interval_s=1.0)
    g.reply(100)
    for d, t in ((1, 0.3), (2, 0.1), (3, 0.2), (4, 0.0)):
        g.sent(d, t)
        g.handled(d, t + 0.01)
    g.history(queued=700, limit=1_000)  # room for 3 replies
    picked = g.pick([1, 2, 3, 4], now=1.5)
    assert picked == [4, 2, 3] and g.held == 1 and g.behind
    assert g.history_bound() and g.overloaded()
    st = g.status()
    assert st["history_bound"] and st["held_for_history_total"] == 1 and st["history_limit"] == 1_000
    g.history(queued=0, limit=1_000)
    assert g.pick([1], now=1.6) == [1] and not g.behind
    g.pick([], now=3.7)  # two intervals without holding: the writer no longer sets the pace
    assert not g.history_bound() and not g.overloaded()


def test_a_tick_polls_at_most_its_cap_and_the_rest_go_next_tick():
    g = PollGate(interval_s=1.0)
    picked = g.pick(list(range(10)), now=1.0, per_tick=4)
    assert len(picked) == 4 and g.capped == 6 and g.held == 0 and g.behind
    for d in picked:
        g.sent(d, 1.0)
    assert sorted(g.pick([d for d in range(10) if d not in picked], now=1.1, per_tick=4)) == \
        sorted(d for d in range(10) if d not in picked)[:4]  # never polled before: any order among equals
