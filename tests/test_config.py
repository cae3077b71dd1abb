"""Run-config parsing: defaults, overrides and errors that name key, value and range."""

import tomllib
from pathlib import Path

import pytest

import strategies  # noqa: F401  (registers the built-in strategies)
from fedmoe_flwr.config import ConfigError, parse_run_config
from fedmoe_flwr.server.policy import build_strategy, strategy_class


def parse_and_build(raw):
    """What the ServerApp does before any write: the config, then the strategy's own keys."""
    return build_strategy(parse_run_config(raw))

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
        ("strategy.fedasync.alpha", 1.5, r"'strategy.fedasync.alpha' must be in \(0, 1\], got 1.5"),
        ("strategy.fedasync.alpha", 0.0, "strategy.fedasync.alpha"),
        ("train.learning-rate", -0.1, "train.learning-rate"),
        ("train.prompt-loss-weight", 1.5, r"train.prompt-loss-weight.*in \[0, 1\]"),
        ("router.candidate-tokens", -1, "router.candidate-tokens"),
        ("model.quantization", 3, "model.quantization"),
        ("strategy.fedasync.staleness", "linear", "strategy.fedasync.staleness"),
        ("gateway.method", "median", "gateway.method"),
        ("data.on-error", "ignore", "data.on-error"),
        ("run.duration", "long", r"'run.duration' must be float, got 'long'"),
        ("sim.speed-factors", "1,fast", "sim.speed-factors"),
        ("run.specialties", "a,a", "duplicates"),
        ("strategy.fedbuff.buffer-size", 0,
         r"'strategy.fedbuff.buffer-size' must be in \[1, 10000\], got 0"),
        ("strategy.fedbuff.server-lr", -1.0,
         r"'strategy.fedbuff.server-lr' must be in \(0, 100\], got -1.0"),
        ("strategy.fedavg.round-timeout", -5.0, "strategy.fedavg.round-timeout"),
        ("strategy.fedavg.sync-scope", "world", r"one of \('global', 'specialty'\)"),
        ("run.keep-versions", -1, "run.keep-versions"),
    ],
)
def test_bad_values_name_the_key(key, value, message):
    with pytest.raises(ConfigError, match=message):
        parse_and_build({key: value})


def test_a_strategys_own_keys_are_parsed_by_it_with_the_same_machinery():
    s = parse_and_build({"strategy.name": "fedbuff", "strategy.fedbuff.buffer-size": 5})
    assert s.name == "fedbuff" and s.params.buffer_size == 5
    # Another strategy's keys are checked too (pyproject lists them all) but not used.
    s = parse_and_build({"strategy.fedbuff.buffer-size": 5, "strategy.fedasync.alpha": 0.3})
    assert s.name == "fedasync" and s.params.alpha == 0.3
    with pytest.raises(ConfigError, match="strategy 'fedbuff' takes"):
        parse_and_build({"strategy.fedbuff.bufer-size": 5})
    with pytest.raises(ConfigError, match="names no registered strategy"):
        parse_and_build({"strategy.fedmagic.alpha": 0.5})


def test_unknown_key_is_rejected_with_the_valid_ones():
    with pytest.raises(ConfigError, match="train.learning-rat"):
        parse_run_config({"train.learning-rat": 0.1})


def test_unknown_strategy_lists_valid_names():
    with pytest.raises(ConfigError, match="fedasync"):
        parse_and_build({"strategy.name": "fedmagic"})


@pytest.mark.parametrize("preset", sorted((ROOT / "conf").glob("*.toml")), ids=lambda p: p.name)
def test_presets_parse_and_say_how_to_run_them(preset, pyproject_config):
    text = preset.read_text()
    assert f"--run-config conf/{preset.name}" in text.split("\n\n")[0]
    overrides = tomllib.loads(text)
    assert overrides, preset.name  # a preset that sets nothing is a mistake
    strategy = parse_and_build({**pyproject_config, **overrides})
    name = overrides.get("strategy.name", pyproject_config["strategy.name"])
    assert strategy.name == name == strategy_class(name).name
