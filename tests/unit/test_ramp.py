"""The launch-rate controller on a fake clock."""

from scheduler.core.ramp import Ramp


def test_tokens_follow_the_integral_of_the_rate():
    r = Ramp(initial=2, slope=1, now=0.0)
    assert r.take(100, now=0.0) == 2  # one second's worth to start
    assert r.take(100, now=1.0) == 2  # 2*1 + 1*1/2 = 2.5 -> 2
    assert r.take(100, now=2.0) == 4  # 0.5 left + (2*1 + (4-1)/2) = 4.0, within the cap rate(2) = 4


def test_throttle_halves_the_rate_and_ramps_again():
    r = Ramp(initial=8, slope=0, now=0.0)
    r.take(100, now=0.0)
    r.throttle(now=0.0)
    assert r.rate(0.0) == 4
    assert r.take(100, now=1.0) == 4


def test_a_restart_soon_after_a_throttle_keeps_the_cut_rate():
    r = Ramp(initial=8, slope=0, now=0.0)
    r.throttle(now=0.0)
    r.restart(now=1.0)
    assert r.rate(1.0) == 4
    r.restart(now=30.0)  # long after: back to the initial rate
    assert r.rate(30.0) == 8
