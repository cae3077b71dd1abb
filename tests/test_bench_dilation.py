"""The async-vs-sync benchmark's time dilation and time-to-target (hand-computed)."""

import importlib.util
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "async_vs_sync", Path(__file__).resolve().parents[1] / "bench" / "async_vs_sync.py")
bench = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = bench  # dataclasses look their module up
_spec.loader.exec_module(bench)


def test_a_fleet_that_fits_the_cores_runs_as_is():
    # 1/4 + 1/4 = 0.5 cores of demand on 16 cores
    assert bench.dilation("4,4", cores=16) == 1.0
    assert bench.dilated("4,4", cores=16) == "4,4"


def test_dilation_fits_demand_into_cores_minus_the_servers_share():
    # scenario (b): 3 x 1 + 3 x 1/4 = 3.75 cores; 2 cores - 0.5 -> 2.5x slower for all
    assert bench.dilation("1,1,1,4,4,4", cores=2) == pytest.approx(2.5)
    assert bench.dilated("1,1,1,4,4,4", cores=2) == "2.5,2.5,2.5,10,10,10"
    # scenario (a): 1 + 1 + 1/4 = 2.25 cores -> 1.5x; the 4x ratio is kept
    assert bench.dilated("1,1,4", cores=2) == "1.5,1.5,6"


def test_time_to_target_waits_for_every_specialty():
    curves = {"x": [(0.0, 9.0), (5.0, 4.0)], "y": [(0.0, 9.0), (3.0, 6.0), (8.0, 4.5)]}
    assert bench.first_time_below(curves, {"x": 4.0, "y": 5.0}) == 8.0
    assert bench.first_time_below(curves, {"x": 3.0, "y": 5.0}) is None


def test_a_variant_entry_carries_typed_values_into_valid_toml(tmp_path):
    name, extra = bench.parse_variant("fedasync+train.overlap=true+train.sync-interval=3"
                                      "+train.overlap-rule=carry+strategy.fedasync.alpha=0.5")
    assert name == "fedasync"
    assert extra == {"train.overlap": True, "train.sync-interval": 3,
                     "train.overlap-rule": "carry", "strategy.fedasync.alpha": 0.5}
    args = type("Args", (), {"steps": 0, "budget": 75.0, "seed": 1, "work": tmp_path,
                             "seconds_per_token": 0.0})()
    config = bench.run_config(bench.SCENARIOS["b"], "fedasync+train.overlap=true", args)
    assert "train.overlap=true " in config + " " and "train.overlap='true'" not in config


def test_a_long_variant_label_still_makes_a_valid_run_name():
    from fedmoe_flwr.config import check_name

    long = "fedasync+train.max-steps=0+train.sync-interval=5+train.overlap=true"
    other = long + "+train.overlap-rule=replace"
    for label in (long, other):
        check_name(f"b-{bench.label_dir(label)}", "run.name")  # raises when invalid
    assert bench.label_dir(long) != bench.label_dir(other)
    assert bench.label_dir(long) == bench.label_dir(long)  # --rescore finds it again
    assert bench.label_dir("fedasync+x=1") == "fedasync-x-1"
