"""The lag measure and the routing decision, without servers."""

import math

from exchange.history.replica_lag import DOWN, LAGGING, OK, LagTracker, judge


def test_lag_is_the_age_of_the_oldest_position_the_replica_misses():
    tracker = LagTracker()
    assert tracker.observe(100, 100, now=10.0) == 0.0
    assert tracker.observe(150, 100, now=11.0) == 0.0  # first seen now
    assert tracker.observe(200, 120, now=13.0) == 2.0  # 150 still missing since 11
    assert tracker.observe(200, 160, now=14.0) == 1.0  # 150 replayed; 200 seen at 13
    assert tracker.observe(200, 200, now=15.0) == 0.0


def test_a_quiet_spell_is_no_lag():
    tracker = LagTracker()
    assert tracker.observe(100, 100, now=0.0) == 0.0
    assert tracker.observe(101, 101, now=3600.0) == 0.0


def test_behind_at_the_first_check_counts_as_behind_forever_until_caught_up():
    tracker = LagTracker()
    assert math.isinf(tracker.observe(500, 100, now=1.0))
    assert math.isinf(tracker.observe(500, 400, now=2.0))
    assert tracker.observe(500, 500, now=3.0) == 0.0


def test_judge():
    assert judge(0.5, 1.0).status == OK
    assert judge(None, 1.0).serves_reads  # the primary is the one unreachable
    lagging = judge(3.0, 1.0)
    assert lagging.status == LAGGING and not lagging.serves_reads
    assert lagging.describe() == "lagging: 3.0s behind (bound 1s); history reads from the primary"
    assert judge(None, 1.0, "unreachable").status == DOWN
