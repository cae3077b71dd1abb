from fedmoe_flwr.node.training import stretch_seconds


def test_a_slow_node_sleeps_in_proportion_to_its_compute_not_its_wait():
    # 0.4 s on the clock, of which 0.1 s on the CPU (0.3 s waiting for a core):
    # a 4x slower node sleeps 3 x 0.1, not 3 x 0.4.
    assert stretch_seconds(0.4, 0.1, 4.0) == 0.30000000000000004
    # Several torch threads: CPU time above wall time, so the wall time counts.
    assert stretch_seconds(0.2, 0.7, 3.0) == 0.4
    assert stretch_seconds(0.2, 0.2, 1.0) == 0.0


def test_clock_oddities_never_give_a_negative_sleep():
    assert stretch_seconds(-0.1, 0.2, 4.0) == 0.0
    assert stretch_seconds(0.3, -1.0, 2.0) == 0.0
