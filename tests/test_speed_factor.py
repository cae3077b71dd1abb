from fedmoe_flwr.node.simulation import stretch_seconds


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


def test_a_cost_model_replaces_the_cpu_time_whatever_the_machine_did():
    # 1,200 padded tokens at 100 us each = 0.12 s of modelled compute; 6x slower -> 0.72 s.
    modelled = 1200 * 100e-6
    assert abs(stretch_seconds(0.1, 0.1, 6.0, modelled) - 0.62) < 1e-12
    # The same step measured 10% slower on busy cores lasts exactly as long.
    assert abs(0.11 + stretch_seconds(0.11, 0.11, 6.0, modelled) - 0.72) < 1e-12
    # Speed 1 is paced too: a step faster than the model waits for it.
    assert abs(stretch_seconds(0.05, 0.05, 1.0, modelled) - 0.07) < 1e-12
    # A step slower than the model (an overloaded machine) does not sleep.
    assert stretch_seconds(0.3, 0.3, 1.0, modelled) == 0.0


def test_the_config_refuses_a_nonsense_step_cost():
    import pytest

    from fedmoe_flwr.config import ConfigError, parse_run_config

    assert parse_run_config({"sim.seconds-per-token": 1e-4}).sim.seconds_per_token == 1e-4
    for bad in (-1e-4, 5.0, float("nan"), "fast"):
        with pytest.raises(ConfigError, match="sim.seconds-per-token"):
            parse_run_config({"sim.seconds-per-token": bad})
