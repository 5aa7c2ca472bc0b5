"""Success rates as rt1-eval and rt1-trial report them (`rt1_ros.closed_loop.success_table`)."""
from __future__ import annotations


def test_wilson_interval_brackets_the_rate_and_stays_in_bounds():
    from rt1_ros.closed_loop.success_table import wilson_interval

    low, high = wilson_interval(40, 50)
    assert 0.66 < low < 0.8 < high < 0.9  # textbook value for 40/50: 0.670 - 0.888
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(0, 20)[1] > 0.1
    assert wilson_interval(20, 20)[1] == 1.0 and wilson_interval(20, 20)[0] < 0.9
