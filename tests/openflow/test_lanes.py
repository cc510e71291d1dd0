import threading

import pytest

from pfepo.openflow.lanes import TwoLaneQueue


def test_urgent_items_jump_ahead_of_normal_ones_in_order():
    q = TwoLaneQueue(maxsize=10)
    for i in range(5):
        q.put(("stats", i))
    q.put(("port_status", 1), urgent=True)
    q.put(("desired", 1), urgent=True)
    assert [q.get() for _ in range(3)] == [("port_status", 1), ("desired", 1), ("stats", 0)]
    assert q.qsize() == 4 and not q.empty()


def test_a_full_normal_lane_never_holds_up_urgent_items():
    q = TwoLaneQueue(maxsize=2)
    q.put(1)
    q.put(2)
    assert not q.put(3, block=False) and q.rejected == 1
    with pytest.raises(OverflowError):
        q.put_nowait(3)
    assert q.put("urgent", urgent=True)  # never blocks, even when the normal lane is full
    assert q.get() == "urgent"
    done = threading.Event()

    def blocked_put():
        q.put(4)
        done.set()

    t = threading.Thread(target=blocked_put)
    t.start()
    assert not done.wait(0.05)  # a receive thread waits for room (backpressure)...
    assert q.get() == 1
    assert done.wait(2)  # ...and goes on as soon as the event thread took one
    t.join()
    assert q.blocked_puts == 1 and [q.get(), q.get()] == [2, 4]
    with pytest.raises(TimeoutError):
        q.get(timeout=0.01)


def test_get_urgent_takes_only_urgent_items_and_never_waits():
    q = TwoLaneQueue(maxsize=10)
    q.put("stats")
    assert q.get_urgent() is None  # a normal item is left for get()
    q.put("port_status", urgent=True)
    assert q.get_urgent() == "port_status" and q.get_urgent() is None
    assert q.get() == "stats"


def test_get_urgent_can_leave_an_item_it_does_not_want():
    q = TwoLaneQueue(maxsize=10)
    q.put("roles", urgent=True)
    q.put("port_status", urgent=True)
    assert q.get_urgent(when=lambda item: item == "port_status") is None  # the head is not wanted: stop
    assert q.get() == "roles" and q.get_urgent(when=lambda item: item == "port_status") == "port_status"
