"""Run-config parsing: defaults, overrides and errors that name key, value and range."""

import tomllib
from pathlib import Path

import pytest

from fedmoe_flwr.config import ConfigError, parse_run_config
from strategies import build_strategy, strategy_class

ROOT = Path(__file__).resolve().parents[1]


def test_pyproject_config_parses_and_matches_defaults(pyproject_config):
    cfg = parse_run_config(pyproject_config)
    assert cfg.model.name == "qwen2-tiny"
    assert cfg.run.specialties == ("python_expert", "sql_expert", "docs_expert")
    assert cfg.strategy.name == "fedasync"
    assert cfg.model.target_modules[0] == "q_proj"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("strategy.alpha", 1.5, r"'strategy.alpha' must be in \(0, 1\], got 1.5"),
        ("strategy.alpha", 0.0, "strategy.alpha"),
        ("train.learning-rate", -0.1, "train.learning-rate"),
        ("train.prompt-loss-weight", 1.5, r"train.prompt-loss-weight.*in \[0, 1\]"),
        ("router.candidate-tokens", -1, "router.candidate-tokens"),
        ("model.quantization", 3, "model.quantization"),
        ("strategy.staleness", "linear", "strategy.staleness"),
        ("gateway.method", "median", "gateway.method"),
        ("data.on-error", "ignore", "data.on-error"),
        ("run.duration", "long", r"'run.duration' must be float, got 'long'"),
        ("sim.speed-factors", "1,fast", "sim.speed-factors"),
        ("run.specialties", "a,a", "duplicates"),
        ("strategy.buffer-size", 0, r"'strategy.buffer-size' must be in \[1, 10000\], got 0"),
        ("strategy.server-lr", -1.0, r"'strategy.server-lr' must be in \(0, 100\], got -1.0"),
        ("strategy.round-timeout", -5.0, "strategy.round-timeout"),
        ("strategy.sync-scope", "world", r"one of \('global', 'specialty'\)"),
        ("run.keep-versions", -1, "run.keep-versions"),
    ],
)
def test_bad_values_name_the_key(key, value, message):
    with pytest.raises(ConfigError, match=message):
        parse_run_config({key: value})


def test_unknown_key_is_rejected_with_the_valid_ones():
    with pytest.raises(ConfigError, match="train.learning-rat"):
        parse_run_config({"train.learning-rat": 0.1})


def test_unknown_strategy_lists_valid_names():
    with pytest.raises(ConfigError, match="fedasync"):
        build_strategy("fedmagic", parse_run_config({}).strategy)


@pytest.mark.parametrize("preset", sorted((ROOT / "conf").glob("*.toml")), ids=lambda p: p.name)
def test_presets_parse_and_say_how_to_run_them(preset, pyproject_config):
    text = preset.read_text()
    assert f"--run-config conf/{preset.name}" in text.split("\n\n")[0]
    cfg = parse_run_config({**pyproject_config, **tomllib.loads(text)})
    assert strategy_class(cfg.strategy.name).name == cfg.strategy.name
