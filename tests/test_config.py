"""Run-config parsing: defaults, overrides and errors that name key, value and range."""

import tomllib
from pathlib import Path

import pytest

from fedmoe_flwr.config import ConfigError, parse_run_config
from strategies import build_strategy

ROOT = Path(__file__).resolve().parents[1]


def flat_pyproject_config() -> dict:
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]
    flat = {}

    def walk(prefix, d):
        for k, v in d.items():
            if isinstance(v, dict):
                walk(f"{prefix}{k}.", v)
            else:
                flat[f"{prefix}{k}"] = v

    walk("", conf)
    return flat


def test_pyproject_config_parses_and_matches_defaults():
    cfg = parse_run_config(flat_pyproject_config())
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
        ("model.quantization", 3, "model.quantization"),
        ("strategy.staleness", "linear", "strategy.staleness"),
        ("gateway.method", "median", "gateway.method"),
        ("data.on-error", "ignore", "data.on-error"),
        ("run.duration", "long", r"'run.duration' must be float, got 'long'"),
        ("sim.speed-factors", "1,fast", "sim.speed-factors"),
        ("run.specialties", "a,a", "duplicates"),
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
        build_strategy("fedmagic")
