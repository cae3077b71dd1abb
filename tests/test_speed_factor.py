from fedmoe_flwr.node.training import stretch_seconds


def test_a_slow_step_lasts_its_factor_times_its_cpu_time():
    # Alone on a core: 0.1 s on the clock and on the CPU; 4x slower -> sleep 0.3 (0.4 in all).
    assert abs(stretch_seconds(0.1, 0.1, 4.0) - 0.3) < 1e-12
    # Shared cores: 0.25 s on the clock, 0.1 s of it on the CPU -> still 0.4 in all.
    assert abs(stretch_seconds(0.25, 0.1, 4.0) - 0.15) < 1e-12
    # Several torch threads: CPU time above wall time, so the wall time counts.
    assert abs(stretch_seconds(0.2, 0.7, 3.0) - 0.4) < 1e-12


def test_no_sleep_at_factor_one_when_waiting_exceeds_the_stretch_or_on_clock_oddities():
    assert stretch_seconds(0.2, 0.2, 1.0) == 0.0
    assert stretch_seconds(0.5, 0.1, 4.0) == 0.0  # waited longer than 4x its work already
    assert stretch_seconds(-0.1, 0.2, 4.0) == 0.0
    assert stretch_seconds(0.3, -1.0, 2.0) == 0.0
