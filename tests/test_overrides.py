"""run.sh's --run-config merging: presets and k=v strings, later values win."""

import tomllib
from pathlib import Path

import pytest

from fedmoe_flwr.config import ConfigError
from fedmoe_flwr.tools.overrides import merge, parse_value, to_toml

ROOT = Path(__file__).resolve().parents[1]


def test_pairs_with_quotes_numbers_and_bools():
    got = parse_value("run.duration=24 run.name='e2e run' strategy.fedasync.alpha=0.5 "
                      'model.gradient-checkpointing=true sim.speed-factors="1,1,4"')
    assert got == {"run.duration": 24, "run.name": "e2e run", "strategy.fedasync.alpha": 0.5,
                   "model.gradient-checkpointing": True, "sim.speed-factors": "1,1,4"}


def test_preset_then_override_later_wins(tmp_path):
    preset = tmp_path / "p.toml"
    preset.write_text('# comment\n"strategy.name" = "fedavg"\n"run.duration" = 90.0\n'
                      '[train]\nmax-steps = 20\n')
    merged = merge([str(preset), "run.duration=30"])
    assert merged == {"strategy.name": "fedavg", "run.duration": 30, "train.max-steps": 20}
    assert tomllib.loads(to_toml(merged)) == merged  # round-trips as TOML


@pytest.mark.parametrize(("value", "message"), [
    ("conf/nope.toml", "does not exist"),
    ("run.name='x' world", "cannot parse 'world'"),
    ("run.name=hello", "quote strings: run.name='text'"),
    ("run.name=[1,", "not a TOML value"),
])
def test_errors_name_the_value(value, message):
    with pytest.raises(ConfigError, match=message):
        parse_value(value)


@pytest.mark.parametrize("preset", sorted((ROOT / "conf").glob("*.toml")), ids=lambda p: p.name)
def test_every_preset_survives_a_later_override(preset):
    want = tomllib.loads(preset.read_text())
    merged = tomllib.loads(to_toml(merge([str(preset), "run.duration=20 run.name='p'"])))
    assert merged == {**want, "run.duration": 20, "run.name": "p"}
